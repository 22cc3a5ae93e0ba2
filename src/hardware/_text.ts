/**
 * Strings between JavaScript and C.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * A string as C wants it: UTF-8 with a NUL at the end.
 *
 * @param text The text; checked by the caller to hold no NUL.
 * @returns The bytes.
 */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`${text}\0`);
}

/**
 * Reads a C string.
 *
 * @param pointer Where it starts, or NULL.
 * @returns The text, or `undefined` for NULL.
 */
export function readCString(pointer: Deno.PointerValue): string | undefined {
  return pointer === null
    ? undefined
    : Deno.UnsafePointerView.getCString(pointer);
}

/**
 * Reads a NULL-terminated array of C strings, as libjack returns them.
 *
 * @param array The array, or NULL (an empty list).
 * @returns The strings.
 */
export function readCStringArray(array: Deno.PointerValue): string[] {
  if (array === null) return [];
  const view = new Deno.UnsafePointerView(array);
  const out: string[] = [];
  for (let offset = 0;; offset += 8) {
    const item = view.getPointer(offset);
    if (item === null) return out;
    out.push(Deno.UnsafePointerView.getCString(item));
  }
}
