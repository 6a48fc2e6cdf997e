// JSON string quoting for the WAN proxy's control endpoint (internal to src/wanproxy).
#pragma once

#include <string>
#include <string_view>

namespace meridian::wanproxy {

// `text` as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view text);

}  // namespace meridian::wanproxy
