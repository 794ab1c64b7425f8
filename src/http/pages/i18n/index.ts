import { de } from './de.js';
import { en } from './en.js';
import type { Messages } from './en.js';

export type { Messages } from './en.js';

/** The catalogs, by primary language subtag. A translation is one more file here. */
export const CATALOGS: Record<string, Messages> = { en, de };

/**
 * The catalog for an `Accept-Language` header (RFC 9110 §12.5.4): the
 * acceptable language with the highest weight that has a catalog, matched on
 * its primary subtag (`de-CH` → `de`); English otherwise.
 */
export function negotiate(header: string | undefined): Messages {
  if (!header) return en;
  const ranges = header
    .split(',')
    .slice(0, 20)
    .map((part, index) => {
      const [tag, ...params] = part.trim().split(';');
      const q = params.map((p) => /^\s*q=([01](?:\.\d{0,3})?)\s*$/i.exec(p)?.[1]).find((v) => v !== undefined);
      return { lang: tag.trim().toLowerCase().split('-')[0], q: q === undefined ? 1 : Number(q), index };
    })
    .filter((r) => r.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index);
  for (const range of ranges) {
    if (range.lang === '*') return en;
    const catalog = CATALOGS[range.lang];
    if (catalog) return catalog;
  }
  return en;
}
