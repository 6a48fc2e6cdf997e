#include "api/resp.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/event.h"

namespace meridian::api::resp {

namespace {

// The length of a line ending in \r\n at `input` (without them), or nullopt when no \r\n is there
// yet.
std::optional<size_t> LineLength(std::string_view input) {
  const size_t end = input.find("\r\n");
  if (end == std::string_view::npos) return std::nullopt;
  return end;
}

// A count after a type byte: digits (and a leading '-' for -1), within [min, max].
bool ParseCount(std::string_view text, int64_t min, int64_t max, int64_t* out) {
  if (text.empty()) return false;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

// Splits an inline command's line into words: spaces separate; "..." with \n \r \t \\ \" \xHH
// escapes and '...' with \' group (as redis-cli and Redis's sdssplitargs do). False on an
// unbalanced quote.
bool SplitInline(std::string_view line, std::vector<std::string>* args) {
  size_t i = 0;
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::string word;
    if (line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i];
        if (c == '\\' && i + 1 < line.size()) {
          const char e = line[i + 1];
          if (e == 'x' && i + 3 < line.size() && hex(line[i + 2]) >= 0 && hex(line[i + 3]) >= 0) {
            word += static_cast<char>(hex(line[i + 2]) * 16 + hex(line[i + 3]));
            i += 4;
            continue;
          }
          word += e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e;
          i += 2;
          continue;
        }
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        word += c;
        ++i;
      }
      // A closing quote must end the word.
      if (!closed || (i < line.size() && line[i] != ' ' && line[i] != '\t')) return false;
    } else if (line[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i];
        if (c == '\\' && i + 1 < line.size() && line[i + 1] == '\'') {
          word += '\'';
          i += 2;
          continue;
        }
        if (c == '\'') {
          closed = true;
          ++i;
          break;
        }
        word += c;
        ++i;
      }
      if (!closed || (i < line.size() && line[i] != ' ' && line[i] != '\t')) return false;
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') word += line[i++];
    }
    args->push_back(std::move(word));
  }
  return true;
}

}  // namespace

Parsed ParseCommand(std::string_view input, const ParseLimits& limits,
                    std::vector<std::string>* args, size_t* consumed, std::string* error) {
  args->clear();
  *consumed = 0;
  if (input.empty()) return Parsed::kNeedMore;
  if (input[0] != '*') {
    // An inline command: one line.
    const size_t newline = input.find('\n');
    if (newline == std::string_view::npos) {
      if (input.size() > limits.inline_bytes_max) {
        *error = "too big inline request";
        return Parsed::kError;
      }
      return Parsed::kNeedMore;
    }
    std::string_view line = input.substr(0, newline);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > limits.inline_bytes_max) {
      *error = "too big inline request";
      return Parsed::kError;
    }
    if (!SplitInline(line, args)) {
      *error = "unbalanced quotes in request";
      return Parsed::kError;
    }
    *consumed = newline + 1;
    return args->empty() ? Parsed::kNeedMore : Parsed::kCommand;
  }
  size_t pos = 1;
  auto header = LineLength(input.substr(pos));
  if (!header) {
    if (input.size() > 64) {
      *error = "invalid multibulk length";
      return Parsed::kError;
    }
    return Parsed::kNeedMore;
  }
  int64_t count = 0;
  if (!ParseCount(input.substr(pos, *header), -1, static_cast<int64_t>(limits.args_max), &count)) {
    *error = "invalid multibulk length";
    return Parsed::kError;
  }
  pos += *header + 2;
  if (count <= 0) {
    // *0 and *-1 are empty requests: skipped, as Redis does.
    *consumed = pos;
    return Parsed::kNeedMore;
  }
  std::vector<std::string> parsed;
  parsed.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    if (pos >= input.size()) return Parsed::kNeedMore;
    if (input[pos] != '$') {
      *error = std::string("expected '$', got '") +
               (input[pos] >= 0x20 && input[pos] < 0x7f ? input[pos] : '?') + "'";
      return Parsed::kError;
    }
    auto length_line = LineLength(input.substr(pos + 1));
    if (!length_line) {
      if (input.size() - pos > 64) {
        *error = "invalid bulk length";
        return Parsed::kError;
      }
      return Parsed::kNeedMore;
    }
    int64_t length = 0;
    if (!ParseCount(input.substr(pos + 1, *length_line), 0,
                    static_cast<int64_t>(limits.bulk_bytes_max), &length)) {
      *error = "invalid bulk length";
      return Parsed::kError;
    }
    pos += 1 + *length_line + 2;
    const size_t size = static_cast<size_t>(length);
    if (input.size() < pos + size + 2) return Parsed::kNeedMore;
    if (input[pos + size] != '\r' || input[pos + size + 1] != '\n') {
      *error = "bulk string not terminated by CRLF";
      return Parsed::kError;
    }
    parsed.emplace_back(input.substr(pos, size));
    pos += size + 2;
  }
  *args = std::move(parsed);
  *consumed = pos;
  return Parsed::kCommand;
}

void Writer::Header(char kind, int64_t count) {
  char buffer[24];
  buffer[0] = kind;
  auto [end, ec] = std::to_chars(buffer + 1, buffer + sizeof(buffer) - 2, count);
  (void)ec;
  *end++ = '\r';
  *end++ = '\n';
  out_->append(buffer, static_cast<size_t>(end - buffer));
}

void Writer::Simple(std::string_view text) {
  out_->push_back('+');
  out_->append(text);
  out_->append("\r\n");
}

void Writer::Error(std::string_view text) {
  out_->push_back('-');
  for (char c : text) out_->push_back(c == '\r' || c == '\n' ? ' ' : c);
  out_->append("\r\n");
}

void Writer::Integer(int64_t value) {
  Header(':', value);
}

void Writer::Bulk(std::string_view bytes) {
  Header('$', static_cast<int64_t>(bytes.size()));
  out_->append(bytes);
  out_->append("\r\n");
}

void Writer::Null() {
  if (protocol_ >= 3) {
    out_->append("_\r\n");
  } else {
    out_->append("$-1\r\n");
  }
}

void Writer::NullArray() {
  if (protocol_ >= 3) {
    out_->append("_\r\n");
  } else {
    out_->append("*-1\r\n");
  }
}

void Writer::Array(size_t count) {
  Header('*', static_cast<int64_t>(count));
}

void Writer::Map(size_t pairs) {
  if (protocol_ >= 3) {
    Header('%', static_cast<int64_t>(pairs));
  } else {
    Header('*', static_cast<int64_t>(pairs * 2));
  }
}

void Writer::Push(size_t count) {
  Header(protocol_ >= 3 ? '>' : '*', static_cast<int64_t>(count));
}

void Writer::Double(double value) {
  char buffer[64];
  const int n = std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  if (protocol_ >= 3) {
    out_->push_back(',');
    out_->append(buffer, static_cast<size_t>(n));
    out_->append("\r\n");
  } else {
    Bulk(std::string_view(buffer, static_cast<size_t>(n)));
  }
}

std::optional<int64_t> ParseInteger(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  const bool negative = text[0] == '-';
  const std::string_view digits = negative ? text.substr(1) : text;
  if (digits.empty() || (digits[0] == '0' && (digits.size() > 1 || negative))) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::string> JsonOfValue(std::string_view value) {
  if (ParseInteger(value)) return std::string(value);
  if (!core::IsValidUtf8(value)) return std::nullopt;
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('"');
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char escape[8];
          std::snprintf(escape, sizeof(escape), "\\u%04x", c);
          out += escape;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string ValueOfJson(std::string_view json) {
  if (json.empty() || json[0] != '"') return std::string(json);
  // A string without escapes is its own bytes between the quotes.
  if (json.find('\\') == std::string_view::npos)
    return std::string(json.substr(1, json.size() - 2));
  nlohmann::json parsed = nlohmann::json::parse(json, nullptr, false);
  if (!parsed.is_string()) return std::string(json);
  return parsed.get<std::string>();
}

std::optional<std::vector<std::pair<std::string, std::string>>> DocumentFields(
    std::string_view rendered) {
  nlohmann::json parsed = nlohmann::json::parse(rendered, nullptr, false);
  if (!parsed.is_object()) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> fields;
  fields.reserve(parsed.size());
  for (auto& [name, value] : parsed.items()) fields.emplace_back(name, value.dump());
  return fields;
}

std::optional<std::string> StringValue(std::string_view rendered) {
  constexpr std::string_view kOpen = "{\"value\":";
  if (rendered == "{}") return std::nullopt;
  if (rendered.starts_with(kOpen) && rendered.ends_with('}')) {
    // The common case without a parse: one number, or one string whose closing quote ends it.
    const std::string_view value =
        rendered.substr(kOpen.size(), rendered.size() - kOpen.size() - 1);
    if (!value.empty() && value[0] == '"') {
      size_t i = 1;
      while (i < value.size() && value[i] != '"') i += value[i] == '\\' ? 2 : 1;
      if (i == value.size() - 1) return std::string(value);
    } else if (!value.empty() && value.find_first_not_of("-+.0123456789eE") == std::string::npos) {
      return std::string(value);
    }
  }
  auto fields = DocumentFields(rendered);
  if (!fields || fields->size() != 1 || (*fields)[0].first != kStringField) return std::nullopt;
  return (*fields)[0].second;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  size_t p = 0;
  size_t t = 0;
  // The last '*' seen and where the text stood then: on a mismatch, the star takes one more byte.
  size_t star = std::string_view::npos;
  size_t star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      const char c = pattern[p];
      if (c == '*') {
        star = p++;
        star_text = t;
        continue;
      }
      if (c == '?') {
        ++p;
        ++t;
        continue;
      }
      if (c == '[') {
        size_t q = p + 1;
        const bool negate = q < pattern.size() && pattern[q] == '^';
        if (negate) ++q;
        bool matched = false;
        bool closed = false;
        while (q < pattern.size()) {
          if (pattern[q] == ']') {
            closed = true;
            break;
          }
          if (pattern[q] == '\\' && q + 1 < pattern.size()) {
            matched = matched || pattern[q + 1] == text[t];
            q += 2;
          } else if (q + 2 < pattern.size() && pattern[q + 1] == '-' && pattern[q + 2] != ']') {
            char low = pattern[q];
            char high = pattern[q + 2];
            if (low > high) std::swap(low, high);
            matched = matched || (text[t] >= low && text[t] <= high);
            q += 3;
          } else {
            matched = matched || pattern[q] == text[t];
            ++q;
          }
        }
        if (closed && matched != negate) {
          p = q + 1;
          ++t;
          continue;
        }
        if (!closed && pattern[p] == text[t]) {  // an unclosed '[' is a literal
          ++p;
          ++t;
          continue;
        }
      } else if (c == '\\' && p + 1 < pattern.size()) {
        if (pattern[p + 1] == text[t]) {
          p += 2;
          ++t;
          continue;
        }
      } else if (c == text[t]) {
        ++p;
        ++t;
        continue;
      }
    }
    if (star == std::string_view::npos) return false;
    p = star + 1;
    t = ++star_text;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string GlobPrefix(std::string_view pattern) {
  std::string prefix;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '*' || c == '?' || c == '[') break;
    if (c == '\\') {
      if (i + 1 >= pattern.size()) break;
      prefix.push_back(pattern[++i]);
      continue;
    }
    prefix.push_back(c);
  }
  return prefix;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

}  // namespace meridian::api::resp
