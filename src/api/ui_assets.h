// The web console's files (src/ui/), built into the binary by cmake/embed_ui.cmake and served at
// /ui/ by the HTTP server (docs/console.md).
#pragma once

#include <string_view>

namespace meridian::api {

struct UiAsset {
  std::string_view name;  // its path under /ui/: "index.html", "app.js", ...
  std::string_view content_type;
  std::string_view body;
};

// The file `name` (under /ui/; "" is index.html), or nullptr.
const UiAsset* FindUiAsset(std::string_view name);

}  // namespace meridian::api
