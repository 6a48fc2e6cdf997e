#include <gtest/gtest.h>

#include "node/config.h"
#include "node/config_text.h"

namespace meridian::node {
namespace {

ConfigPlan TwoRegions() {
  ConfigPlan plan;
  plan.comment = {"a comment", "another"};
  plan.region = "eu";
  plan.data_dir = "/tmp/a \"quoted\" dir\\with\tbackslash";
  plan.deployment = "shop-1";
  plan.regions = {{"us", 1, "127.0.0.1:7001", "127.0.0.1:7101", "127.0.0.1:7201", ""},
                  {"eu", 2, "127.0.0.1:7002", "127.0.0.1:7102", "", "127.0.0.1:7302"}};
  plan.http_threads = 2;
  plan.sync = false;
  plan.cert_file = "pki/eu.pem";
  plan.key_file = "pki/eu-key.pem";
  plan.ca_file = "pki/ca.pem";
  plan.jwt_secret_file = "pki/jwt.key";
  return plan;
}

TEST(ConfigTextTest, WhatItWritesIsWhatTheNodeReads) {
  const ConfigPlan plan = TwoRegions();
  const std::string text = WriteConfigToml(plan);
  auto config = ParseConfig(text, "written.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString() << "\n" << text;
  EXPECT_EQ(config->region, "eu");
  EXPECT_EQ(config->data_dir, plan.data_dir);
  EXPECT_EQ(config->deployment, "shop-1");
  ASSERT_EQ(config->regions.size(), 2u);
  EXPECT_EQ(config->regions[0].name, "us");
  EXPECT_EQ(config->regions[0].id, 1);
  EXPECT_EQ(config->regions[0].resp, "127.0.0.1:7201");
  EXPECT_EQ(config->regions[0].grpc, "");
  EXPECT_EQ(config->regions[1].replication, "127.0.0.1:7102");
  EXPECT_EQ(config->regions[1].grpc, "127.0.0.1:7302");
  EXPECT_EQ(config->http_threads, 2);
  EXPECT_FALSE(config->sync);
  EXPECT_EQ(config->tls.cert_file, "pki/eu.pem");
  EXPECT_EQ(config->tls.key_file, "pki/eu-key.pem");
  EXPECT_EQ(config->tls.ca_file, "pki/ca.pem");
  EXPECT_EQ(config->auth.jwt_secret_file, "pki/jwt.key");
  EXPECT_EQ(text.rfind("# a comment\n# another\n", 0), 0u) << text;
}

TEST(ConfigTextTest, ADialAddressReplacesWhereARegionIsReached) {
  ConfigPlan plan = TwoRegions();
  plan.dial = {"127.0.0.1:9212", ""};
  auto config = ParseConfig(WriteConfigToml(plan), "dial.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->regions[0].replication, "127.0.0.1:9212");
  EXPECT_EQ(config->regions[1].replication, "127.0.0.1:7102");
}

TEST(ConfigTextTest, StringsAreEscapedForToml) {
  EXPECT_EQ(TomlString("plain"), "\"plain\"");
  EXPECT_EQ(TomlString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(TomlString(std::string("new\nline\x7f", 9)), "\"new\\u000aline\\u007f\"");
  // Every byte below 0x20 round-trips through the parser.
  std::string all;
  for (int c = 1; c < 0x20; ++c) all += static_cast<char>(c);
  ConfigPlan plan = TwoRegions();
  plan.data_dir = all + "dir";
  auto config = ParseConfig(WriteConfigToml(plan), "controls.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->data_dir, plan.data_dir);
}

TEST(ConfigTextTest, TheSingleRegionIsLocalOnLoopbackAndValid) {
  auto config = ParseConfig(WriteConfigToml(SingleRegionPlan()), "(none)");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config).ToString();
  EXPECT_EQ(config->region, "local");
  EXPECT_EQ(config->data_dir, "meridian-data");
  ASSERT_EQ(config->regions.size(), 1u);
  EXPECT_EQ(config->self().http, "127.0.0.1:7001");
  EXPECT_EQ(config->self().replication, "127.0.0.1:7101");
  EXPECT_EQ(config->self().resp, "127.0.0.1:7201");
  EXPECT_TRUE(config->sync);
  EXPECT_FALSE(config->tls.enabled());
  EXPECT_FALSE(config->auth.enabled());
}

TEST(ConfigTextTest, RegionsAreLaidOutFromTheBasePort) {
  auto region = PlanRegion("asia", 2, "::1", 9000, true);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  EXPECT_EQ(region->id, 3);
  EXPECT_EQ(region->http, "[::1]:9003");
  EXPECT_EQ(region->replication, "[::1]:9103");
  EXPECT_EQ(region->resp, "[::1]:9203");
  EXPECT_EQ(region->grpc, "[::1]:9303");
  EXPECT_EQ(PlanRegion("us", 0, "127.0.0.1", 7000, false)->grpc, "");
  // The last port of the region must fit.
  EXPECT_TRUE(PlanRegion("us", 0, "127.0.0.1", 65535 - 301, false).ok());
  auto over = PlanRegion("us", 0, "127.0.0.1", 65535 - 300, false);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("65535"), std::string::npos) << over.status().ToString();
}

}  // namespace
}  // namespace meridian::node
