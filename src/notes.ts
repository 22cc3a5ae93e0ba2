/**
 * Which notes are held, so that none is left sounding when a source goes
 * away, and so that no policy drops the message that ends one. The tracker
 * lives beside the codec (src/codec/_notes.ts), which uses it too.
 *
 * @module
 */

export { NoteTracker } from "./codec/_notes.ts";
