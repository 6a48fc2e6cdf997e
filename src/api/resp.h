// RESP, the Redis serialization protocol (versions 2 and 3), for the node's Redis port
// (docs/redis.md): the request parser, the reply writer, and the rules that map Redis strings and
// hashes onto Meridian's documents. Pure — bytes in, commands out; replies appended to a string —
// so that every case is unit-tested and fuzzed; the server (resp_server.cc) only moves bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::api::resp {

// What a request may be, before the command is even looked at.
struct ParseLimits {
  size_t args_max = 1024 * 1024;             // arguments of one command (redis: 1M)
  size_t bulk_bytes_max = 64 * 1024 * 1024;  // one argument
  size_t inline_bytes_max = 64 * 1024;       // an inline command's line
};

enum class Parsed { kCommand, kNeedMore, kError };

// Parses the first command in `input`: an array of bulk strings (what clients send), or an
// inline command (a line of words, as typed into telnet; quotes group words, with \ escapes in
// double quotes). kCommand: *args holds it and *consumed its bytes. kNeedMore: `input` holds
// only a prefix of a command (*consumed is 0; an empty line is consumed and skipped).
// kError: *error says what is wrong with the bytes; the connection cannot go on.
Parsed ParseCommand(std::string_view input, const ParseLimits& limits,
                    std::vector<std::string>* args, size_t* consumed, std::string* error);

// Appends replies in the protocol a connection chose (HELLO 2 or 3). Where RESP3 has types that
// RESP2 lacks, the RESP2 form is the one Redis sends: a map as a flat array of pairs, a push as
// an array, a null as the null bulk string.
class Writer {
 public:
  explicit Writer(std::string* out, int protocol = 2) : out_(out), protocol_(protocol) {}
  void set_protocol(int protocol) { protocol_ = protocol; }
  int protocol() const { return protocol_; }

  void Simple(std::string_view text);  // +OK
  // -<text>: `text` starts with the error's kind ("ERR ...", "WRONGTYPE ..."); line breaks in it
  // become spaces.
  void Error(std::string_view text);
  void Integer(int64_t value);
  void Bulk(std::string_view bytes);
  void Null();       // a missing value: $-1 (RESP2), _ (RESP3)
  void NullArray();  // a missing array: *-1 (RESP2), _ (RESP3)
  void Array(size_t count);
  void Map(size_t pairs);
  void Push(size_t count);  // out-of-band messages (pub/sub)
  void Double(double value);

 private:
  void Header(char kind, int64_t count);
  std::string* out_;
  int protocol_;
};

// --- Strings and hashes as documents (docs/redis.md#data-model) ---------------------------------

// The field that holds a Redis string: a string is a document whose only field is "value".
inline constexpr std::string_view kStringField = "value";

// A value a client sends, as the canonical JSON value it is stored as: the text of an integer in
// Redis's own form (an optional '-', no leading zeros, within int64) becomes a JSON integer, so
// that INCR and HINCRBY count on it and it merges as a counter; anything else a JSON string.
// nullopt when the bytes are not UTF-8 (documents hold JSON text).
std::optional<std::string> JsonOfValue(std::string_view value);
// The bytes a client reads of a stored canonical JSON value: a JSON string unquoted, anything
// else (numbers, true, false, null, arrays, objects) as its JSON text.
std::string ValueOfJson(std::string_view json);
// Whether `text` is an integer in Redis's form (JsonOfValue), and its value.
std::optional<int64_t> ParseInteger(std::string_view text);

// A rendered document (a canonical JSON object) as its fields in name order: (name, canonical
// JSON value). nullopt when it is not an object.
std::optional<std::vector<std::pair<std::string, std::string>>> DocumentFields(
    std::string_view rendered);
// The value of a string document ({"value": ...} and no other field), as canonical JSON; nullopt
// when the document has other fields (then string commands answer WRONGTYPE).
std::optional<std::string> StringValue(std::string_view rendered);

// --- Key patterns (SCAN MATCH, KEYS, PSUBSCRIBE) -------------------------------------------------

// Redis's glob: * any bytes, ? one byte, [abc] [^a] [a-z] a class, \x the byte x.
bool GlobMatch(std::string_view pattern, std::string_view text);
// The bytes every match of `pattern` starts with (before its first special character): the
// prefix a scan or a watch reads.
std::string GlobPrefix(std::string_view pattern);

// Keyspace notifications: channels "__keyspace@0__:<key>" (message: the event) and
// "__keyevent@0__:<event>" (message: the key). The events are "set" (the document exists after
// the change) and "del" (it does not).
inline constexpr std::string_view kKeyspaceChannel = "__keyspace@0__:";
inline constexpr std::string_view kKeyeventChannel = "__keyevent@0__:";

// An ASCII upper-case copy (command names and options are case-insensitive).
std::string Upper(std::string_view text);

}  // namespace meridian::api::resp
