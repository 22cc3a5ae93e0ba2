/**
 * The native libraries under RtMidi, opened once and silenced: libjack and
 * libasound print their own errors on standard error (about 36 lines for a
 * port listing without a JACK server). Both let a program install its own
 * printer; midisock installs a native function that reads the text and
 * does nothing with it (`strlen`), since both libraries call the printer
 * from their own threads, where a JavaScript callback would have to wait
 * for the JavaScript thread. What matters reaches the user as a midisock
 * error instead (see `_backends.ts`).
 *
 * @module
 */

import {
  ALSA_SYMBOLS,
  type AlsaLibrary,
  JACK_SYMBOLS,
  type JackLibrary,
  LIBC_SYMBOLS,
  openOptional,
  rtldDefault,
  systemLibraryNames,
} from "../../ffi/system.ts";
import { cString } from "./_text.ts";

/** Native functions found in the process, for libraries to call. */
interface NativeFunctions {
  /** `size_t strlen(const char *)`: a printer that prints nothing. */
  readonly quiet: Deno.PointerObject;
  /** `time_t time(time_t *)`: writes the time at its argument. */
  readonly stamp: Deno.PointerObject;
}

let natives: NativeFunctions | null | undefined;

/**
 * The process's `strlen` and `time`, looked up once.
 *
 * @returns Them, or `undefined` where `dlsym` cannot be reached.
 */
export function nativeFunctions(): NativeFunctions | undefined {
  if (natives !== undefined) return natives ?? undefined;
  natives = null;
  const libc = openOptional(
    systemLibraryNames("libc", Deno.build.os),
    LIBC_SYMBOLS,
  );
  if (libc === undefined) return undefined;
  const find = (name: string) =>
    libc.symbols.dlsym(rtldDefault(Deno.build.os), cString(name));
  const quiet = find("strlen");
  const stamp = find("time");
  if (quiet !== null && stamp !== null) natives = { quiet, stamp };
  return natives ?? undefined;
}

let jack: JackLibrary | null | undefined;
let alsa: AlsaLibrary | null | undefined;

/**
 * libjack, silenced, or `undefined` where it is missing.
 *
 * @returns The library.
 */
export function jackLibrary(): JackLibrary | undefined {
  if (jack !== undefined) return jack ?? undefined;
  jack =
    openOptional(systemLibraryNames("jack", Deno.build.os), JACK_SYMBOLS) ??
      null;
  const quiet = nativeFunctions()?.quiet;
  if (jack !== null && quiet !== undefined) {
    jack.symbols.jack_set_error_function(quiet);
    jack.symbols.jack_set_info_function(quiet);
  }
  return jack ?? undefined;
}

/**
 * libasound, silenced, or `undefined` where it is missing.
 *
 * @returns The library.
 */
export function alsaLibrary(): AlsaLibrary | undefined {
  if (alsa !== undefined) return alsa ?? undefined;
  alsa =
    openOptional(systemLibraryNames("alsa", Deno.build.os), ALSA_SYMBOLS) ??
      null;
  const quiet = nativeFunctions()?.quiet;
  if (alsa !== null && quiet !== undefined) {
    alsa.symbols.snd_lib_error_set_handler(quiet);
  }
  return alsa ?? undefined;
}

/**
 * Silences every native library under RtMidi that is present. Called before
 * the first RtMidi call; calling it again does nothing.
 */
export function silenceNativeLibraries(): void {
  jackLibrary();
  alsaLibrary();
}
