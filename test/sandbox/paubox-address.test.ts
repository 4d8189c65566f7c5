import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAddress, parseAddressFully, type ParsedAddress } from '../../src/sandbox/paubox-validate.js';

/**
 * The sandbox Paubox reads plain `local@domain.tld` addresses without the full RFC 5322
 * parser. That shortcut must accept exactly what the parser accepts and read it the same
 * way: here both run over generated addresses, near-plain ones included.
 */

const ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-";
const LABEL = 'aZ09-';
/** A run of characters, now and then an empty one (`a..b`, `@.com`). */
const chars = (alphabet: string, max: number) =>
  fc.oneof(
    { arbitrary: fc.array(fc.constantFrom(...alphabet.split('')), { minLength: 1, maxLength: max }).map((a) => a.join('')), weight: 19 },
    { arbitrary: fc.constant(''), weight: 1 },
  );

/** Addresses built from the pieces a plain one is made of, plus the ones that break it. */
const candidate = fc
  .tuple(
    fc.array(chars(ATEXT, 6), { minLength: 1, maxLength: 3 }),
    fc.constantFrom('@', '@', '@', '@@', ''),
    fc.array(chars(LABEL, 6), { minLength: 1, maxLength: 4 }),
    fc.constantFrom('', '', '', ' ', '.', '\n', '"', '<', 'é', '(c)'),
  )
  .map(([local, at, domain, extra]) => `${local.join('.')}${at}${domain.join('.')}${extra}`);

const NAME = 'aZ0 !#.,;:<>@[]()~\'"\\é';

/** `"Name" <address>` and its near misses: escapes, quotes, spaces at the edges, no space before `<`. */
const named = fc
  .tuple(chars(NAME, 8), fc.constantFrom('" <', '" <', '" <', '"<', '"  <', ' <'), candidate, fc.constantFrom('>', '>', '>', '', '> ', '>x'))
  .map(([name, mid, address, end]) => `"${name}${mid}${address}${end}`);

function outcome(parse: (v: unknown, field: string) => ParsedAddress, value: string): ParsedAddress | string {
  try {
    return parse(value, 'recipients');
  } catch (err) {
    return (err as Error).message;
  }
}

describe('sandbox Paubox addresses', () => {
  it('reads every generated address as the full parser does', () => {
    let accepted = 0;
    fc.assert(
      fc.property(candidate, (value) => {
        const full = outcome(parseAddressFully, value);
        if (typeof full !== 'string') accepted++;
        expect(outcome(parseAddress, value)).toEqual(full);
      }),
      { numRuns: 5_000 },
    );
    // The property says little unless many generated addresses are valid ones.
    expect(accepted).toBeGreaterThan(500);
  });

  it('reads every generated `"Name" <address>` as the full parser does', () => {
    let accepted = 0;
    fc.assert(
      fc.property(named, (value) => {
        const full = outcome(parseAddressFully, value);
        if (typeof full !== 'string') accepted++;
        expect(outcome(parseAddress, value)).toEqual(full);
      }),
      { numRuns: 5_000 },
    );
    expect(accepted).toBeGreaterThan(250);
  });

  it('takes the shortcut for ordinary addresses and still refuses bad ones', () => {
    for (const value of ['Pat.Doe+x@Mail.Example.ORG', 'a@b.co', "o'brien@clinic-1.example.com", 'a@-example.com', 'a@example-.com']) {
      expect(parseAddress(value, 'recipients')).toEqual(parseAddressFully(value, 'recipients'));
    }
    for (const value of ['a@localhost', 'a..b@example.com', '.a@example.com', 'a@example.com.']) {
      expect(() => parseAddress(value, 'recipients')).toThrow('recipients contains an address that is not valid');
    }
    expect(parseAddress('Pat <pat@example.org>', 'recipients').address).toBe('pat@example.org');
    expect(parseAddress('"Clinic" <care@Clinic.Example>', 'headers.from')).toEqual({ address: 'care@Clinic.Example', local: 'care', domain: 'clinic.example' });
  });
});
