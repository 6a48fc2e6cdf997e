// The tests' HTTP client is the project's own synchronous client (src/client/http_client.h).
#pragma once

#include "client/http_client.h"

namespace meridian::testing {
using client::EncodeKey;
using client::HttpClient;
using client::HttpResponse;
}  // namespace meridian::testing
