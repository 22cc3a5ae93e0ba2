/**
 * The native libraries RtMidi sits on, as data for `Deno.dlopen`: libjack
 * (JACK), libasound (ALSA) and the C library. midisock calls a few of their
 * functions directly: to silence their own printing on standard error, to
 * tell whether a JACK server runs or the ALSA sequencer opens before RtMidi
 * is asked, to list JACK's ports in one snapshot, and to see how full an
 * RtMidi JACK output's buffer is. Each is optional: where a library is
 * missing, midisock does what RtMidi alone allows.
 *
 * @module
 */

/** `JackNoStartServer`: never start a server as a side effect. */
export const JACK_NO_START_SERVER = 0x01;

/** `JackPortIsInput`: a port that receives (an RtMidi output opens it). */
export const JACK_PORT_IS_INPUT = 0x1;

/** `JackPortIsOutput`: a port that sends (an RtMidi input opens it). */
export const JACK_PORT_IS_OUTPUT = 0x2;

/** `JACK_DEFAULT_MIDI_TYPE`: the type name of JACK's MIDI ports. */
export const JACK_MIDI_TYPE = "8 bit raw midi";

/** The bits of `jack_status_t` that say why a client was not opened. */
export const JACK_STATUS = {
  /** `JackFailure`: the operation failed. */
  failure: 0x01,
  /** `JackServerFailed`: no server could be reached. */
  serverFailed: 0x10,
  /** `JackServerError`: the server answered with an error. */
  serverError: 0x20,
  /** `JackNoSuchClient`: no client of that name. */
  noSuchClient: 0x40,
  /** `JackInitFailure`: the client could not be initialised. */
  initFailure: 0x100,
  /** `JackShmFailure`: shared memory could not be attached. */
  shmFailure: 0x200,
  /** `JackVersionError`: libjack and the server speak different versions. */
  versionError: 0x400,
} as const;

/** The libjack functions midisock calls. */
export const JACK_SYMBOLS = {
  // void jack_set_error_function(void (*func)(const char *));
  jack_set_error_function: {
    parameters: [
      "function", // void (*func)(const char *): a native function
    ],
    result: "void",
  },

  // void jack_set_info_function(void (*func)(const char *));
  jack_set_info_function: {
    parameters: [
      "function", // void (*func)(const char *): a native function
    ],
    result: "void",
  },

  // jack_client_t *jack_client_open(const char *client_name,
  //                                 jack_options_t options,
  //                                 jack_status_t *status, ...);
  // Variadic; called with no variadic arguments, which every ABI midisock
  // runs on passes like a fixed three-argument call.
  jack_client_open: {
    parameters: [
      "buffer", // const char *client_name: NUL-terminated
      "i32", // jack_options_t options
      "buffer", // jack_status_t *status: out
    ],
    result: "pointer",
    nonblocking: true,
  },

  // void jack_on_shutdown(jack_client_t *client,
  //                       JackShutdownCallback function, void *arg);
  jack_on_shutdown: {
    parameters: [
      "pointer", // jack_client_t *client
      "function", // void (*function)(void *arg): a native function
      "buffer", // void *arg
    ],
    result: "void",
  },

  // jack_nframes_t jack_get_buffer_size(jack_client_t *client);
  jack_get_buffer_size: {
    parameters: [
      "pointer", // jack_client_t *client
    ],
    result: "u32",
  },

  // jack_nframes_t jack_get_sample_rate(jack_client_t *client);
  jack_get_sample_rate: {
    parameters: [
      "pointer", // jack_client_t *client
    ],
    result: "u32",
  },

  // const char **jack_get_ports(jack_client_t *client,
  //                             const char *port_name_pattern,
  //                             const char *type_name_pattern,
  //                             unsigned long flags);
  // Reads the graph libjack keeps in shared memory: no round trip to the
  // server. The array is freed with jack_free.
  jack_get_ports: {
    parameters: [
      "pointer", // jack_client_t *client
      "buffer", // const char *port_name_pattern: NULL for all
      "buffer", // const char *type_name_pattern
      "u64", // unsigned long flags (32 bits on Windows: the upper half is 0)
    ],
    result: "pointer",
  },

  // void jack_free(void *ptr);
  jack_free: {
    parameters: [
      "pointer", // void *ptr
    ],
    result: "void",
  },

  // jack_port_t *jack_port_by_name(jack_client_t *client,
  //                                const char *port_name);
  jack_port_by_name: {
    parameters: [
      "pointer", // jack_client_t *client
      "buffer", // const char *port_name
    ],
    result: "pointer",
  },

  // jack_uuid_t jack_port_uuid(const jack_port_t *port);
  // A port's identity: a port re-created under the same name gets another.
  jack_port_uuid: {
    parameters: [
      "pointer", // const jack_port_t *port
    ],
    result: "u64",
    optional: true,
  },

  // const char **jack_port_get_all_connections(const jack_client_t *client,
  //                                            const jack_port_t *port);
  // The full names of the ports connected to any port. Freed with jack_free.
  jack_port_get_all_connections: {
    parameters: [
      "pointer", // const jack_client_t *client
      "pointer", // const jack_port_t *port
    ],
    result: "pointer",
  },

  // size_t jack_ringbuffer_write_space(const jack_ringbuffer_t *rb);
  jack_ringbuffer_write_space: {
    parameters: [
      "pointer", // const jack_ringbuffer_t *rb
    ],
    result: "usize",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** libjack as `Deno.dlopen` returns it for {@linkcode JACK_SYMBOLS}. */
export type JackLibrary = Deno.DynamicLibrary<typeof JACK_SYMBOLS>;

/** `SND_SEQ_OPEN_DUPLEX`: open the sequencer for input and output. */
export const SND_SEQ_OPEN_DUPLEX = 3;

/** The libasound functions midisock calls. */
export const ALSA_SYMBOLS = {
  // int snd_lib_error_set_handler(snd_lib_error_handler_t handler);
  // handler: void (*)(const char *file, int line, const char *function,
  //                   int err, const char *fmt, ...)
  snd_lib_error_set_handler: {
    parameters: [
      "function", // snd_lib_error_handler_t handler: a native function
    ],
    result: "i32",
  },

  // int snd_seq_open(snd_seq_t **handle, const char *name, int streams,
  //                  int mode);
  snd_seq_open: {
    parameters: [
      "buffer", // snd_seq_t **handle: out
      "buffer", // const char *name: "default"
      "i32", // int streams: SND_SEQ_OPEN_DUPLEX
      "i32", // int mode: 0 (blocking)
    ],
    result: "i32",
    nonblocking: true,
  },

  // int snd_seq_close(snd_seq_t *handle);
  snd_seq_close: {
    parameters: [
      "pointer", // snd_seq_t *handle
    ],
    result: "i32",
    nonblocking: true,
  },

  // const char *snd_strerror(int errnum);
  snd_strerror: {
    parameters: [
      "i32", // int errnum: negative
    ],
    result: "pointer",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** libasound as `Deno.dlopen` returns it for {@linkcode ALSA_SYMBOLS}. */
export type AlsaLibrary = Deno.DynamicLibrary<typeof ALSA_SYMBOLS>;

/** The C library function midisock calls. */
export const LIBC_SYMBOLS = {
  // void *dlsym(void *handle, const char *symbol);
  // With RTLD_DEFAULT it finds a function already loaded in the process:
  // midisock hands libjack and libasound native functions this way, never
  // JavaScript callbacks, since they call them from their own threads.
  dlsym: {
    parameters: [
      "pointer", // void *handle: RTLD_DEFAULT
      "buffer", // const char *symbol: NUL-terminated
    ],
    result: "pointer",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The C library as `Deno.dlopen` returns it. */
export type LibcLibrary = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/**
 * Where each library is looked for, per platform: names the system's loader
 * resolves (an already loaded library is found again by its name).
 */
export const SYSTEM_LIBRARIES = {
  jack: {
    linux: ["libjack.so.0", "libjack.so"],
    darwin: [
      "libjack.0.dylib",
      "/usr/local/lib/libjack.0.dylib",
      "/opt/homebrew/lib/libjack.0.dylib",
    ],
    windows: ["libjack64.dll"],
  },
  alsa: {
    linux: ["libasound.so.2", "libasound.so"],
    darwin: [],
    windows: [],
  },
  libc: {
    // glibc 2.34 moved dlsym into libc.so.6; older glibc has it in libdl.
    linux: ["libc.so.6", "libdl.so.2", "libc.so"],
    darwin: ["/usr/lib/libSystem.B.dylib"],
    windows: [],
  },
} as const satisfies Record<
  string,
  Record<"linux" | "darwin" | "windows", readonly string[]>
>;

/**
 * `RTLD_DEFAULT` for `dlsym`: NULL on Linux, -2 on macOS.
 *
 * @param os The operating system.
 * @returns The handle to pass.
 */
export function rtldDefault(os: typeof Deno.build.os): Deno.PointerValue {
  return os === "darwin" ? Deno.UnsafePointer.create(-2n) : null;
}

/**
 * Opens the first of `names` that loads, or none.
 *
 * @param names The candidates, in order.
 * @param symbols The symbol table.
 * @returns The library, or `undefined` when none loads.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 */
export function openOptional<S extends Deno.ForeignLibraryInterface>(
  names: readonly string[],
  symbols: S,
): Deno.DynamicLibrary<S> | undefined {
  for (const name of names) {
    try {
      return Deno.dlopen(name, symbols);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
    }
  }
  return undefined;
}

/**
 * The candidate names of one library on this platform.
 *
 * @param library Which library.
 * @param os The operating system.
 * @returns The names, possibly none.
 */
export function systemLibraryNames(
  library: keyof typeof SYSTEM_LIBRARIES,
  os: typeof Deno.build.os,
): readonly string[] {
  const table: Record<string, readonly string[]> = SYSTEM_LIBRARIES[library];
  return table[os === "darwin" || os === "windows" ? os : "linux"] ?? [];
}
