/**
 * Salesforce Files as the org maintains them: a ContentVersion created without a
 * ContentDocumentId starts a new ContentDocument (owned by the creator and linked to the
 * creator), and one with a FirstPublishLocationId is also shared with that record through
 * a ContentDocumentLink. IsLatest and LatestPublishedVersionId follow each new version.
 */
import path from 'node:path';
import type { Transaction, Triggers, Row } from './db.js';
import type { ObjectSchema } from './schema.js';
import { SaveFailure } from './fields.js';

export const fileTriggers: Triggers = {
  beforeInsert(tx, object, row) {
    if (object.name !== 'ContentVersion') return;
    requireFields(row, ['VersionData', 'PathOnClient']);
    const data = row.VersionData as Buffer;
    const pathOnClient = String(row.PathOnClient);
    const ext = path.extname(pathOnClient).slice(1).toLowerCase();
    row.Title ??= path.basename(pathOnClient, path.extname(pathOnClient));
    row.FileExtension = ext || null;
    row.ContentSize = data.length;
    row.IsLatest = true;
    if (row.ContentDocumentId) {
      // A new version of an existing document: the previous latest one steps back.
      for (const v of tx.db.rows('ContentVersion')) {
        if (v.ContentDocumentId === row.ContentDocumentId && v.IsLatest) tx.updateRow(schemaOf(tx, 'ContentVersion'), v.Id as string, { IsLatest: false });
      }
    } else {
      row.ContentDocumentId = tx.insertRow(schemaOf(tx, 'ContentDocument'), {
        Title: row.Title, FileExtension: row.FileExtension, ContentSize: row.ContentSize, OwnerId: row.OwnerId,
        LatestPublishedVersionId: null,
      });
    }
  },

  afterInsert(tx, object, row) {
    if (object.name !== 'ContentVersion') return;
    const docId = row.ContentDocumentId as string;
    tx.updateRow(schemaOf(tx, 'ContentDocument'), docId, {
      LatestPublishedVersionId: row.Id, Title: row.Title, FileExtension: row.FileExtension, ContentSize: row.ContentSize,
    });
    if (versionsOf(tx, docId).length > 1) return;
    const links = schemaOf(tx, 'ContentDocumentLink');
    tx.insertRow(links, { ContentDocumentId: docId, LinkedEntityId: row.OwnerId, ShareType: 'I', Visibility: 'AllUsers' });
    if (row.FirstPublishLocationId) {
      tx.insertRow(links, { ContentDocumentId: docId, LinkedEntityId: row.FirstPublishLocationId, ShareType: 'V', Visibility: 'AllUsers' });
    }
  },

  afterDelete(tx, object, row) {
    const id = row.Id as string;
    if (object.name === 'ContentDocument') {
      for (const v of versionsOf(tx, id)) tx.delete('ContentVersion', v.Id as string);
    }
    // Links go with either end: the document or the record it was shared with.
    for (const link of [...tx.db.rows('ContentDocumentLink')]) {
      if (link.LinkedEntityId === id || link.ContentDocumentId === id) tx.delete('ContentDocumentLink', link.Id as string);
    }
  },
};

function requireFields(row: Record<string, unknown>, names: string[]): void {
  const missing = names.filter((n) => row[n] === null || row[n] === undefined);
  if (missing.length) {
    throw new SaveFailure([{ statusCode: 'REQUIRED_FIELD_MISSING', message: `Required fields are missing: [${missing.join(', ')}]`, fields: missing }]);
  }
}

function versionsOf(tx: Transaction, docId: string): Row[] {
  return [...tx.db.rows('ContentVersion')].filter((v) => v.ContentDocumentId === docId);
}

function schemaOf(tx: Transaction, name: string): ObjectSchema {
  return tx.db.schema.objects[name]!;
}
