/**
 * RtMidi's C API (`rtmidi_c.h`) as data: one entry per function midisock
 * calls, for `Deno.dlopen`. Versions 4.0, 5.0 and 6.0 of the library (and
 * the unreleased master branch) are covered; what differs between them is
 * described in `layout.ts`, not here.
 *
 * Calls that may wait for the MIDI system (creating, opening, closing and
 * freeing devices, listing ports) are `nonblocking`: they run on a worker
 * thread, so the JavaScript thread never stalls on the MIDI server and stays
 * free to serve a callback meanwhile (a MIDI thread calling into JavaScript
 * waits for that thread). Reading the input queue, sending short messages
 * and installing or removing the input callback are quick and stay
 * synchronous.
 *
 * C types: `RtMidiPtr`, `RtMidiInPtr` and `RtMidiOutPtr` are pointers to the
 * same wrapper struct; `enum RtMidiApi` is a C `int`.
 *
 * @module
 */

/**
 * The signature of `RtMidiCCallback` (4.0 and later): `void (*)(double
 * timeStamp, const unsigned char *message, size_t messageSize, void
 * *userData)`. Inputs read RtMidi's queue; an idle JACK input installs it,
 * as a thread-safe callback, only to hear the first message after a
 * silence, and removes it from inside that call.
 */
export const INPUT_CALLBACK = {
  parameters: [
    "f64", // double timeStamp: seconds since the previous message
    "pointer", // const unsigned char *message: valid during the call only
    "usize", // size_t messageSize
    "pointer", // void *userData
  ],
  result: "void",
} as const satisfies Deno.UnsafeCallbackDefinition;

/** Every RtMidi function midisock uses. */
export const SYMBOLS = {
  // const char *rtmidi_get_version(void); 6.0 and later.
  rtmidi_get_version: {
    parameters: [],
    result: "pointer",
    optional: true,
  },

  // int rtmidi_get_compiled_api(enum RtMidiApi *apis, unsigned int apis_size);
  rtmidi_get_compiled_api: {
    parameters: [
      "buffer", // enum RtMidiApi *apis: NULL asks for the count
      "u32", // unsigned int apis_size
    ],
    result: "i32",
  },

  // const char *rtmidi_api_name(enum RtMidiApi api);
  rtmidi_api_name: {
    parameters: [
      "i32", // enum RtMidiApi api
    ],
    result: "pointer",
  },

  // enum RtMidiApi rtmidi_compiled_api_by_name(const char *name);
  rtmidi_compiled_api_by_name: {
    parameters: [
      "buffer", // const char *name: NUL-terminated
    ],
    result: "i32",
  },

  // void rtmidi_open_port(RtMidiPtr device, unsigned int portNumber,
  //                       const char *portName);
  rtmidi_open_port: {
    parameters: [
      "pointer", // RtMidiPtr device
      "u32", // unsigned int portNumber
      "buffer", // const char *portName: never NULL (NULL aborts)
    ],
    result: "void",
    nonblocking: true,
  },

  // void rtmidi_open_virtual_port(RtMidiPtr device, const char *portName);
  rtmidi_open_virtual_port: {
    parameters: [
      "pointer", // RtMidiPtr device
      "buffer", // const char *portName: never NULL (NULL aborts)
    ],
    result: "void",
    nonblocking: true,
  },

  // void rtmidi_close_port(RtMidiPtr device);
  rtmidi_close_port: {
    parameters: [
      "pointer", // RtMidiPtr device
    ],
    result: "void",
    nonblocking: true,
  },

  // unsigned int rtmidi_get_port_count(RtMidiPtr device);
  rtmidi_get_port_count: {
    parameters: [
      "pointer", // RtMidiPtr device
    ],
    result: "u32",
    nonblocking: true,
  },

  // 5.0 and later:
  // int rtmidi_get_port_name(RtMidiPtr device, unsigned int portNumber,
  //                          char *bufOut, int *bufLen);
  // With bufOut NULL it stores the length needed (with the NUL) in *bufLen.
  rtmidi_get_port_name: {
    parameters: [
      "pointer", // RtMidiPtr device
      "u32", // unsigned int portNumber
      "buffer", // char *bufOut: NULL asks for the length
      "buffer", // int *bufLen
    ],
    result: "i32",
    nonblocking: true,
  },

  // 4.0: const char *rtmidi_get_port_name(RtMidiPtr device,
  //                                       unsigned int portNumber);
  // The same symbol, returning a string the library allocated.
  rtmidi_get_port_name_v4: {
    name: "rtmidi_get_port_name",
    parameters: [
      "pointer", // RtMidiPtr device
      "u32", // unsigned int portNumber
    ],
    result: "pointer",
    nonblocking: true,
  },

  // RtMidiInPtr rtmidi_in_create(enum RtMidiApi api, const char *clientName,
  //                              unsigned int queueSizeLimit);
  rtmidi_in_create: {
    parameters: [
      "i32", // enum RtMidiApi api
      "buffer", // const char *clientName: never NULL (NULL aborts)
      "u32", // unsigned int queueSizeLimit
    ],
    result: "pointer",
    nonblocking: true,
  },

  // void rtmidi_in_free(RtMidiInPtr device);
  rtmidi_in_free: {
    parameters: [
      "pointer", // RtMidiInPtr device
    ],
    result: "void",
    nonblocking: true,
  },

  // enum RtMidiApi rtmidi_in_get_current_api(RtMidiPtr device);
  rtmidi_in_get_current_api: {
    parameters: [
      "pointer", // RtMidiPtr device
    ],
    result: "i32",
  },

  // void rtmidi_in_set_callback(RtMidiInPtr device, RtMidiCCallback callback,
  //                             void *userData);
  // Synchronous: it only sets RtMidi's flags (MidiInApi::setCallback), on
  // every backend, and never waits for the MIDI system.
  rtmidi_in_set_callback: {
    parameters: [
      "pointer", // RtMidiInPtr device
      "function", // RtMidiCCallback callback
      "pointer", // void *userData
    ],
    result: "void",
  },

  // void rtmidi_in_cancel_callback(RtMidiInPtr device);
  // Synchronous too: it only clears the flags, so an input's callback can
  // remove itself from the JavaScript thread while the MIDI thread waits
  // in it.
  rtmidi_in_cancel_callback: {
    parameters: [
      "pointer", // RtMidiInPtr device
    ],
    result: "void",
  },

  // void rtmidi_in_ignore_types(RtMidiInPtr device, bool midiSysex,
  //                             bool midiTime, bool midiSense);
  rtmidi_in_ignore_types: {
    parameters: [
      "pointer", // RtMidiInPtr device
      "bool", // bool midiSysex
      "bool", // bool midiTime
      "bool", // bool midiSense
    ],
    result: "void",
  },

  // double rtmidi_in_get_message(RtMidiInPtr device, unsigned char *message,
  //                              size_t *size);
  // Pops RtMidi's input queue (filled only while no callback is set). A
  // message longer than *size is popped and lost; *size tells its length.
  rtmidi_in_get_message: {
    parameters: [
      "pointer", // RtMidiInPtr device
      "buffer", // unsigned char *message
      "buffer", // size_t *size: in, the buffer's length; out, the message's
    ],
    result: "f64",
  },

  // RtMidiOutPtr rtmidi_out_create(enum RtMidiApi api, const char *clientName);
  rtmidi_out_create: {
    parameters: [
      "i32", // enum RtMidiApi api
      "buffer", // const char *clientName: never NULL (NULL aborts)
    ],
    result: "pointer",
    nonblocking: true,
  },

  // void rtmidi_out_free(RtMidiOutPtr device);
  rtmidi_out_free: {
    parameters: [
      "pointer", // RtMidiOutPtr device
    ],
    result: "void",
    nonblocking: true,
  },

  // enum RtMidiApi rtmidi_out_get_current_api(RtMidiPtr device);
  rtmidi_out_get_current_api: {
    parameters: [
      "pointer", // RtMidiPtr device
    ],
    result: "i32",
  },

  // int rtmidi_out_send_message(RtMidiOutPtr device,
  //                             const unsigned char *message, int length);
  // Short messages: a quick copy into the backend's buffer.
  rtmidi_out_send_message: {
    parameters: [
      "pointer", // RtMidiOutPtr device
      "buffer", // const unsigned char *message
      "i32", // int length
    ],
    result: "i32",
  },

  // The same call on a worker thread, for long sysex messages, which some
  // backends (WinMM) write out before returning.
  rtmidi_out_send_message_nonblocking: {
    name: "rtmidi_out_send_message",
    parameters: [
      "pointer", // RtMidiOutPtr device
      "buffer", // const unsigned char *message
      "i32", // int length
    ],
    result: "i32",
    nonblocking: true,
  },

  // Unreleased master:
  // void rtmidi_set_error_callback(RtMidiPtr device,
  //                                RtMidiErrorCCallback callback,
  //                                void *userData);
  // Declared so its presence tells the wrapper layout apart; not called.
  rtmidi_set_error_callback: {
    parameters: [
      "pointer", // RtMidiPtr device
      "function", // RtMidiErrorCCallback callback
      "pointer", // void *userData
    ],
    result: "void",
    optional: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The library as `Deno.dlopen` returns it for {@linkcode SYMBOLS}. */
export type RtMidiLibrary = Deno.DynamicLibrary<typeof SYMBOLS>;
