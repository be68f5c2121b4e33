/** A new worker id: `w` and 8 random Crockford base32 characters. */
export function newWorkerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return "w" + Array.from(bytes, (b) => "0123456789abcdefghjkmnpqrstvwxyz"[b & 31]).join("");
}
