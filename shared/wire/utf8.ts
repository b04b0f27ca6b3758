import { configureTextEncoding } from "@bufbuild/protobuf/wire";

/**
 * protobuf-es decodes strings with a default TextDecoder, which drops a
 * leading U+FEFF (byte order mark): "\uFEFFalice" sent by a client would
 * arrive as "alice", after the client's own checks and before the service's.
 * Strings must cross the wire unchanged, so every Orderly process decodes
 * with `ignoreBOM` (keep it). Imported for its effect by the gRPC adapter and
 * the event code, before anything is decoded.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });

configureTextEncoding({
  encodeUtf8: (text) => encoder.encode(text),
  decodeUtf8: (bytes, strict) => (strict ? strictDecoder : decoder).decode(bytes),
  checkUtf8: (text) => {
    try {
      encodeURIComponent(text);
      return true;
    } catch {
      return false;
    }
  },
});
