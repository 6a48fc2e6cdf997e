// Session tokens: a version vector a client carries so that any region it reads from first
// catches up with everything the client has written or seen. Text form: base64url (no padding)
// of the compact version-vector encoding (docs/formats.md). The empty vector is "".
#pragma once

#include <string>
#include <string_view>

#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::api {

// base64url (RFC 4648 section 5) without padding.
std::string EncodeBase64Url(std::string_view bytes);

std::string EncodeSessionToken(const core::VersionVector& vv);
// kInvalidArgument for anything that is not a token.
Result<core::VersionVector> DecodeSessionToken(std::string_view token);

}  // namespace meridian::api
