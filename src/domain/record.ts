/**
 * The Salesforce objects as the worker sees them (contract §1, §6). Field API names are
 * used verbatim so a record read over REST needs no mapping.
 */

export const MESSAGE_OBJECT = 'Secure_EmailMessage__c';
export const ATTEMPT_OBJECT = 'Secure_Email_Attempt__c';
export const CHANGE_CHANNEL = '/data/Secure_EmailMessage__ChangeEvent';

export const STATUSES = [
  'Draft', 'Queued', 'Sending', 'Sent', 'Delivered', 'Partially Delivered', 'Bounced', 'Failed',
] as const;
export type Status = (typeof STATUSES)[number];

export const ATTEMPT_OUTCOMES = ['Claimed', 'Posting', 'Sent', 'Failed', 'Unknown'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

export interface SecureEmailMessage {
  Id: string;
  Name?: string;
  Status__c: Status | null;
  To_Address__c?: string | null;
  Cc_Address__c?: string | null;
  Bcc_Address__c?: string | null;
  From_Address__c?: string | null;
  From_Name__c?: string | null;
  Reply_To__c?: string | null;
  Subject__c?: string | null;
  Html_Body__c?: string | null;
  Text_Body__c?: string | null;
  Related_To_Id__c?: string | null;
  In_Reply_To__c?: string | null;
  Force_Secure_Notification__c?: boolean | null;
  Allow_Non_TLS__c?: boolean | null;
  Tracking_Id__c?: string | null;
  Message_Identifier__c?: string | null;
  Delivery_Details__c?: string | null;
  Error__c?: string | null;
  Attempts__c?: number | null;
  Sent_At__c?: string | null;
  Delivered_At__c?: string | null;
  Opened_At__c?: string | null;
  LastModifiedDate?: string;
}

/** The fields a send needs, in SOQL order. */
export const SEND_FIELDS = [
  'Id', 'Status__c', 'To_Address__c', 'Cc_Address__c', 'Bcc_Address__c', 'From_Address__c',
  'From_Name__c', 'Reply_To__c', 'Subject__c', 'Html_Body__c', 'Text_Body__c',
  'In_Reply_To__c', 'Force_Secure_Notification__c', 'Allow_Non_TLS__c', 'Attempts__c',
  'Tracking_Id__c', 'LastModifiedDate',
] as const;

export interface SecureEmailAttempt {
  Id?: string;
  Message__c: string;
  Attempt_Key__c: string;
  Worker__c?: string | null;
  Outcome__c: AttemptOutcome;
  Tracking_Id__c?: string | null;
  Error__c?: string | null;
  Claimed_At__c?: string | null;
  Finished_At__c?: string | null;
}

/** A file attached to a message (ContentDocumentLink → latest ContentVersion). */
export interface Attachment {
  contentVersionId: string;
  title: string;
  pathOnClient: string | null;
  fileExtension: string | null;
  size: number;
}
