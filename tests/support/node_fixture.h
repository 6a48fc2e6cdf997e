// NodeFixture: a GoogleTest fixture with one running node (fsync off: these tests check
// behaviour, the crash test checks durability) and a client to it.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "support/http_client.h"
#include "support/node_process.h"

namespace meridian::testing {

class NodeFixture : public ::testing::Test {
 protected:
  // Config sections appended for the node; tests that need others override this.
  virtual std::string ExtraToml() { return "[storage]\nsync = false\n"; }

  void SetUp() override {
    NodeOptions options;
    options.extra_toml = ExtraToml();
    node_ = std::make_unique<NodeProcess>(options);
    ASSERT_TRUE(node_->Start()) << "the node did not come up:\n" << node_->log();
    client_.emplace(node_->Client());
  }

  HttpClient& client() { return *client_; }

  std::unique_ptr<NodeProcess> node_;
  std::optional<HttpClient> client_;
};

}  // namespace meridian::testing
