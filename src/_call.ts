/**
 * Internal: calling code a user handed in.
 *
 * @module
 */

/**
 * Calls a user's callback; an error it throws is reported (as an uncaught
 * error would be) but never stops the caller.
 */
export function callBack<A extends unknown[]>(
  callback: ((...args: A) => void) | undefined,
  ...args: A
): void {
  try {
    callback?.(...args);
  } catch (error) {
    reportError(error);
  }
}
