/**
 * The sandbox org's schema, read from the SFDX source in config/salesforce so the sandbox
 * and the deployable metadata cannot drift. Standard objects the worker touches (Files)
 * are described here by hand, as Salesforce defines them.
 *
 * (Types fixed first so the REST, SOQL and CometD parts can be built side by side;
 * `loadSchema` is implemented alongside the metadata.)
 */

export type FieldType =
  | 'Id' | 'Text' | 'TextArea' | 'LongTextArea' | 'Html' | 'Email' | 'Url' | 'Phone'
  | 'Picklist' | 'Checkbox' | 'Number' | 'Date' | 'DateTime' | 'AutoNumber'
  | 'MasterDetail' | 'Lookup' | 'Base64';

export interface FieldSchema {
  name: string;
  type: FieldType;
  label?: string;
  length?: number;
  precision?: number;
  scale?: number;
  required?: boolean;
  unique?: boolean;
  caseSensitive?: boolean;
  externalId?: boolean;
  /** Picklist values, and whether the picklist is restricted. */
  picklist?: { values: string[]; restricted: boolean; default?: string };
  /** For MasterDetail / Lookup: the parent object, and the relationship name (`Message__r`). */
  referenceTo?: string;
  relationshipName?: string;
  /** AutoNumber display format, e.g. `SEM-{00000000}`. */
  displayFormat?: string;
  defaultValue?: string | boolean | number;
  /** Standard audit fields the org maintains itself (Id, CreatedDate, …): not writable. */
  system?: boolean;
}

export interface ObjectSchema {
  name: string;
  label: string;
  /** 3-character Id prefix, e.g. `a00`. */
  keyPrefix: string;
  fields: Record<string, FieldSchema>;
  /** Change Data Capture enabled (a PlatformEventChannelMember exists). */
  cdc: boolean;
}

export interface OrgSchema {
  objects: Record<string, ObjectSchema>;
}

export declare function loadSchema(configDir?: string): OrgSchema;
