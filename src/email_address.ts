/**
 * Email address parsing that matches Go's `net/mail.ParseAddress` (Go 1.22+), which the Go plugin
 * uses to decide whether a string is a usable email address.
 *
 * - {@link isBareEmailAddress}: the Go plugin's rule for recipients (`role_to_recipients`,
 *   suggested reviewers): the string parses as one RFC 5322 address AND the parsed bare address
 *   equals the input exactly. So `Name <a@b.c>`, `a@b.c (comment)`, surrounding spaces and quoted
 *   local parts (`"a b"@c.d`, whose parsed form drops the quotes) are all rejected, while
 *   `user@localhost`, `user@[192.0.2.1]` and `user@[IPv6:2001:db8::1]` are accepted.
 * - {@link parseMailbox}: one mailbox with an optional display name, for `delivery.sender`
 *   (`Teleport <noreply@example.com>`, `"Team, Ops" <a@b.c>`). Stricter than Go on one point:
 *   control characters (CR, LF, NUL, …) anywhere in the input are rejected, so a sender can never
 *   inject a header; groups (`Team: a@b.c;`) are rejected too.
 *
 * @module
 */

/** A parsed mailbox: display name (possibly empty, RFC 2047 words decoded) and bare address. */
export interface Mailbox {
  name: string;
  address: string;
}

/**
 * Whether `s` is a bare email address, exactly as the Go plugin decides it:
 * `mail.ParseAddress(s)` succeeds and its `Address` equals `s`.
 */
export function isBareEmailAddress(s: string): boolean {
  const parsed = goParseAddress(s);
  return parsed !== undefined && parsed.address === s;
}

/**
 * Parses one mailbox, `addr@example.com` or `Display Name <addr@example.com>`, with Go's
 * `net/mail` grammar. Returns `undefined` when `s` is not exactly one mailbox, contains a control
 * character, or is a group.
 */
export function parseMailbox(s: string): Mailbox | undefined {
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s)) return undefined;
  const p = new AddrParser(s);
  const addrs = p.parseAddress(false);
  if (addrs === undefined || addrs.length !== 1) return undefined;
  if (!p.skipCFWS() || !p.empty()) return undefined;
  return addrs[0];
}

/** Go's `mail.ParseAddress`: the parsed address, or undefined where Go returns an error. */
export function goParseAddress(s: string): Mailbox | undefined {
  const p = new AddrParser(s);
  const addrs = p.parseAddress(true);
  if (addrs === undefined) return undefined;
  if (!p.skipCFWS()) return undefined;
  if (!p.empty()) return undefined;
  if (addrs.length !== 1) return undefined;
  return addrs[0];
}

/** Thrown inside the parser; never escapes this module. */
class ParseFailure extends Error {}

function fail(message: string): never {
  throw new ParseFailure(message);
}

/**
 * A port of Go's `net/mail.addrParser`. `s` is the unread rest of the input; Go indexes bytes, we
 * index UTF-16 code units but always step over whole code points, which gives the same results.
 */
class AddrParser {
  constructor(public s: string) {}

  empty(): boolean {
    return this.s.length === 0;
  }

  peek(): string {
    return this.s[0];
  }

  consume(c: string): boolean {
    if (this.empty() || this.peek() !== c) return false;
    this.s = this.s.slice(1);
    return true;
  }

  skipSpace(): void {
    let i = 0;
    while (i < this.s.length && (this.s[i] === " " || this.s[i] === "\t")) i++;
    this.s = this.s.slice(i);
  }

  /** Go's `parseAddress`; returns undefined on error. */
  parseAddress(handleGroup: boolean): Mailbox[] | undefined {
    try {
      return this.#parseAddress(handleGroup);
    } catch (err) {
      if (err instanceof ParseFailure) return undefined;
      throw err;
    }
  }

  #parseAddress(handleGroup: boolean): Mailbox[] {
    this.skipSpace();
    if (this.empty()) fail("no address");

    // addr-spec has a more restricted grammar than name-addr, so try it first.
    const orig = this.s;
    let spec: string | undefined;
    try {
      spec = this.consumeAddrSpec();
    } catch (err) {
      if (!(err instanceof ParseFailure)) throw err;
      this.s = orig;
    }
    if (spec !== undefined) {
      let displayName = "";
      this.skipSpace();
      if (!this.empty() && this.peek() === "(") displayName = this.consumeDisplayNameComment();
      return [{ name: displayName, address: spec }];
    }

    let displayName = "";
    if (this.peek() !== "<") displayName = this.consumePhrase();
    this.skipSpace();
    if (handleGroup && this.consume(":")) return this.consumeGroupList();
    if (!this.consume("<")) fail("no angle-addr");
    spec = this.consumeAddrSpec();
    if (!this.consume(">")) fail("unclosed angle-addr");
    return [{ name: displayName, address: spec }];
  }

  consumeGroupList(): Mailbox[] {
    const group: Mailbox[] = [];
    this.skipSpace();
    if (this.consume(";")) {
      if (!this.skipCFWS()) fail("misformatted parenthetical comment");
      return group;
    }
    for (let guard = 0; guard <= this.s.length + 1; guard++) {
      this.skipSpace();
      const addrs = this.#parseAddress(false);
      group.push(...addrs);
      if (!this.skipCFWS()) fail("misformatted parenthetical comment");
      if (this.consume(";")) {
        if (!this.skipCFWS()) fail("misformatted parenthetical comment");
        return group;
      }
      if (!this.consume(",")) fail("expected comma");
    }
    fail("unterminated group");
  }

  /** Go's `consumeAddrSpec`: restores `s` on failure (done by the caller here). */
  consumeAddrSpec(): string {
    const orig = this.s;
    try {
      this.skipSpace();
      if (this.empty()) fail("no addr-spec");
      let localPart: string;
      if (this.peek() === '"') {
        localPart = this.consumeQuotedString();
        if (localPart === "") fail("empty quoted string in addr-spec");
      } else {
        localPart = this.consumeAtom(true, false);
      }
      if (!this.consume("@")) fail("missing @ in addr-spec");
      this.skipSpace();
      if (this.empty()) fail("no domain in addr-spec");
      const domain = this.peek() === "["
        ? this.consumeDomainLiteral()
        : this.consumeAtom(true, false);
      return `${localPart}@${domain}`;
    } catch (err) {
      this.s = orig;
      throw err;
    }
  }

  consumePhrase(): string {
    const words: string[] = [];
    let isPrevEncoded = false;
    let failed = false;
    for (let guard = 0; guard <= this.s.length + 1; guard++) {
      if (words.length > 0 && !this.skipCFWS()) fail("misformatted parenthetical comment");
      this.skipSpace();
      if (this.empty()) break;
      let word: string;
      let isEncoded = false;
      try {
        if (this.peek() === '"') {
          word = this.consumeQuotedString();
        } else {
          word = this.consumeAtom(true, true);
          [word, isEncoded] = decodeRfc2047Word(word);
        }
      } catch (err) {
        if (!(err instanceof ParseFailure)) throw err;
        failed = true;
        break;
      }
      if (isPrevEncoded && isEncoded) words[words.length - 1] += word;
      else words.push(word);
      isPrevEncoded = isEncoded;
    }
    if (failed && words.length === 0) fail("missing word in phrase");
    return words.join(" ");
  }

  consumeQuotedString(): string {
    // The first character is '"'.
    let i = 1;
    let out = "";
    let escaped = false;
    for (;;) {
      const r = this.s.codePointAt(i);
      if (r === undefined) fail("unclosed quoted-string");
      if (isLoneSurrogate(r)) fail("invalid utf-8 in quoted-string");
      const size = r > 0xffff ? 2 : 1;
      const ch = String.fromCodePoint(r);
      if (escaped) {
        if (!isVchar(r) && !isWsp(r)) fail("bad character in quoted-string");
        out += ch;
        escaped = false;
      } else if (isQtext(r) || isWsp(r)) {
        out += ch;
      } else if (ch === '"') {
        break;
      } else if (ch === "\\") {
        escaped = true;
      } else {
        fail("bad character in quoted-string");
      }
      i += size;
    }
    this.s = this.s.slice(i + 1);
    return out;
  }

  /**
   * Go's `consumeAtom`. `dot` admits periods (dot-atom); `permissive` skips the leading, trailing
   * and double dot checks (used for display names).
   */
  consumeAtom(dot: boolean, permissive: boolean): string {
    let i = 0;
    for (;;) {
      const r = this.s.codePointAt(i);
      if (r === undefined) break;
      if (isLoneSurrogate(r)) fail("invalid utf-8 in address");
      if (!isAtext(r, dot)) break;
      i += r > 0xffff ? 2 : 1;
    }
    if (i === 0) fail("invalid string");
    const atom = this.s.slice(0, i);
    this.s = this.s.slice(i);
    if (!permissive) {
      if (atom.startsWith(".")) fail("leading dot in atom");
      if (atom.includes("..")) fail("double dot in atom");
      if (atom.endsWith(".")) fail("trailing dot in atom");
    }
    return atom;
  }

  consumeDomainLiteral(): string {
    if (!this.consume("[")) fail('missing "[" in domain-literal');
    let dtext = "";
    for (;;) {
      if (this.empty()) fail("unclosed domain-literal");
      if (this.peek() === "]") break;
      const r = this.s.codePointAt(0)!;
      if (isLoneSurrogate(r)) fail("invalid utf-8 in domain-literal");
      if (!isDtext(r)) fail("bad character in domain-literal");
      const size = r > 0xffff ? 2 : 1;
      dtext += this.s.slice(0, size);
      this.s = this.s.slice(size);
    }
    if (!this.consume("]")) fail("unclosed domain-literal");
    if (dtext.startsWith("IPv6:")) {
      // net.ParseIP always returns 16 bytes for a valid IP, so any valid IP passes here.
      if (parseIp(dtext.slice(5)) === undefined) fail("invalid IPv6 address in domain-literal");
    } else {
      const ip = parseIp(dtext);
      if (ip === undefined || !isIpv4Compatible(ip)) fail("invalid IP address in domain-literal");
    }
    return `[${dtext}]`;
  }

  consumeDisplayNameComment(): string {
    if (!this.consume("(")) fail("comment does not start with (");
    const [comment, ok] = this.consumeComment();
    if (!ok) fail("misformatted parenthetical comment");
    const words = comment.split(/[ \t]+/).filter((w) => w !== "");
    return words.map((w) => {
      const [decoded, isEncoded] = decodeRfc2047Word(w);
      return isEncoded ? decoded : w;
    }).join(" ");
  }

  /** Go's `skipCFWS`: false when a comment is not closed. */
  skipCFWS(): boolean {
    this.skipSpace();
    while (this.consume("(")) {
      if (!this.consumeComment()[1]) return false;
      this.skipSpace();
    }
    return true;
  }

  /** '(' already consumed. Returns the comment text and whether it was closed. */
  consumeComment(): [string, boolean] {
    let depth = 1;
    let comment = "";
    while (!this.empty() && depth !== 0) {
      if (this.peek() === "\\" && this.s.length > 1) this.s = this.s.slice(1);
      else if (this.peek() === "(") depth++;
      else if (this.peek() === ")") depth--;
      if (depth > 0) comment += this.s[0];
      this.s = this.s.slice(1);
    }
    return [comment, depth === 0];
  }
}

function isLoneSurrogate(r: number): boolean {
  return r >= 0xd800 && r <= 0xdfff;
}

/** RFC 5322 VCHAR, extended by RFC 6532 to every non-ASCII character. */
function isVchar(r: number): boolean {
  return (r >= 0x21 && r <= 0x7e) || r >= 0x80;
}

function isWsp(r: number): boolean {
  return r === 0x20 || r === 0x09;
}

const SPECIALS = new Set(Array.from('()<>[]:;@\\,"', (c) => c.codePointAt(0)!));

function isAtext(r: number, dot: boolean): boolean {
  if (r === 0x2e) return dot;
  if (SPECIALS.has(r)) return false;
  return isVchar(r);
}

function isQtext(r: number): boolean {
  if (r === 0x5c || r === 0x22) return false;
  return isVchar(r);
}

function isDtext(r: number): boolean {
  if (r === 0x5b || r === 0x5d || r === 0x5c) return false;
  return isVchar(r);
}

/**
 * Go's `net.ParseIP` (1.17+: IPv4 parts without leading zeros; no zones). Returns the 16 bytes
 * of the address, or undefined when `s` is not an IP address.
 */
export function parseIp(s: string): Uint8Array | undefined {
  if (s.includes(":")) return parseIpv6(s);
  const v4 = parseIpv4(s);
  if (v4 === undefined) return undefined;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

function parseIpv4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseIpv6(s: string): Uint8Array | undefined {
  const out = new Uint8Array(16);
  let ellipsis = -1;
  let i = 0;
  let rest = s;
  if (rest.startsWith("::")) {
    ellipsis = 0;
    rest = rest.slice(2);
    if (rest === "") return out;
  }
  while (i < 16) {
    const m = /^[0-9a-fA-F]{1,4}/.exec(rest);
    if (m === null) return undefined;
    // An embedded IPv4 address at the end.
    if (rest.length > m[0].length && rest[m[0].length] === ".") {
      if (ellipsis < 0 && i !== 12) return undefined;
      if (i + 4 > 16) return undefined;
      const v4 = parseIpv4(rest);
      if (v4 === undefined) return undefined;
      out.set(v4, i);
      i += 4;
      rest = "";
      break;
    }
    const n = parseInt(m[0], 16);
    out[i] = n >> 8;
    out[i + 1] = n & 0xff;
    i += 2;
    rest = rest.slice(m[0].length);
    if (rest === "") break;
    if (rest[0] !== ":" || rest.length === 1) return undefined;
    rest = rest.slice(1);
    if (rest[0] === ":") {
      if (ellipsis >= 0) return undefined;
      ellipsis = i;
      rest = rest.slice(1);
      if (rest === "") break;
    }
  }
  if (rest !== "") return undefined;
  if (i < 16) {
    if (ellipsis < 0) return undefined;
    const n = 16 - i;
    for (let j = i - 1; j >= ellipsis; j--) out[j + n] = out[j];
    out.fill(0, ellipsis, ellipsis + n);
  } else if (ellipsis >= 0) {
    // The ellipsis must stand for at least one group.
    return undefined;
  }
  return out;
}

/** `net.IP.To4() != nil`: an IPv4 address or an IPv4-mapped IPv6 address. */
function isIpv4Compatible(ip: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (ip[i] !== 0) return false;
  return ip[10] === 0xff && ip[11] === 0xff;
}

/**
 * Go's `decodeRFC2047Word` with the default decoder: `[decoded, true]` for a valid encoded word
 * in UTF-8, ISO-8859-1 or US-ASCII; `[word, false]` for anything that is not an encoded word.
 * An unsupported charset is an error (Go: "charset not supported").
 */
function decodeRfc2047Word(word: string): [string, boolean] {
  const m = /^=\?([^?]+)\?([bBqQ])\?([^?]*)\?=$/.exec(word);
  if (m === null || word.length < 8) return [word, false];
  const [, charsetRaw, encoding, text] = m;
  let bytes: Uint8Array | undefined;
  if (encoding === "b" || encoding === "B") bytes = decodeBase64(text);
  else bytes = decodeQ(text);
  if (bytes === undefined) return [word, false];
  const charset = charsetRaw.toLowerCase();
  if (charset === "utf-8") return [new TextDecoder().decode(bytes), true];
  if (charset === "iso-8859-1") return [String.fromCharCode(...bytes), true];
  if (charset === "us-ascii") {
    return [
      Array.from(bytes, (b) => (b >= 0x80 ? "\ufffd" : String.fromCharCode(b))).join(""),
      true,
    ];
  }
  fail("charset not supported");
}

function decodeBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function decodeQ(text: string): Uint8Array | undefined {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (text[i] === "_") {
      out.push(0x20);
    } else if (text[i] === "=") {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      out.push(parseInt(hex, 16));
      i += 2;
    } else if ((c >= 0x20 && c <= 0x7e) || c === 0x0a || c === 0x0d || c === 0x09) {
      out.push(c);
    } else {
      return undefined;
    }
  }
  return Uint8Array.from(out);
}
