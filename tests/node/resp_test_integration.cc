// The Redis protocol port (docs/redis.md) against real `meridian start` processes, spoken to by
// real Redis clients: redis-cli, redis-benchmark and Python's redis library (Debian's
// python3-redis). Strings and hashes as documents, counters merging across regions, WAIT,
// keyspace notifications, [auth] and [tls], and a client failing over when its region is killed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "support/certs.h"
#include "support/cluster.h"
#include "support/node_process.h"
#include "support/temp_dir.h"
#include "support/tokens.h"

namespace meridian::testing {
namespace {

using json = nlohmann::json;

struct Shell {
  std::string out;
  int code = -1;
};

// Runs `command` with sh; stdout and stderr together.
Shell RunShell(const std::string& command) {
  Shell result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  size_t got;
  while (pipe != nullptr && (got = fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    result.out.append(buffer, got);
  }
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// redis-cli's answer to one command (its raw output, trailing newline removed).
std::string Cli(uint16_t port, const std::string& command, const std::string& options = "") {
  Shell shell = RunShell("redis-cli --no-auth-warning -h 127.0.0.1 -p " + std::to_string(port) +
                         " " + options + " " + command);
  while (!shell.out.empty() && shell.out.back() == '\n') shell.out.pop_back();
  return shell.out;
}

// Runs a Python script (Debian's python3, with python3-redis) and parses the JSON it prints last.
json Python(const TempDir& dir, const std::string& script, const std::string& arguments,
            std::string* output) {
  const std::string path = dir.path() + "/client.py";
  std::ofstream(path) << script;
  Shell shell = RunShell("/usr/bin/python3 " + path + " " + arguments);
  *output = shell.out;
  const size_t last = shell.out.rfind("\n{");
  const std::string tail = last == std::string::npos ? shell.out : shell.out.substr(last + 1);
  json parsed = json::parse(tail, nullptr, false);
  return shell.code == 0 ? parsed : json();
}

std::string Http(NodeProcess& node, const std::string& key) {
  auto response = node.Client().Get("/v1/docs/" + key);
  return response.status == 200 ? response.body : std::to_string(response.status);
}

TEST(RespPort, StringsAndHashesAreDocumentsThroughRedisCli) {
  NodeOptions options;
  options.resp = true;
  options.extra_toml = "[storage]\nsync = false\n";
  NodeProcess node(options);
  ASSERT_TRUE(node.Start()) << node.log();
  const uint16_t port = node.resp_port();

  EXPECT_EQ(Cli(port, "PING"), "PONG");
  EXPECT_EQ(Cli(port, "SET greeting 'hello world'"), "OK");
  EXPECT_EQ(Cli(port, "GET greeting"), "hello world");
  EXPECT_EQ(Http(node, "greeting"), R"({"value":"hello world"})");
  // Integers are stored as numbers, so that INCR counts on a value SET wrote.
  EXPECT_EQ(Cli(port, "SET stock 10"), "OK");
  EXPECT_EQ(Cli(port, "INCRBY stock 5"), "15");
  EXPECT_EQ(Cli(port, "DECR stock"), "14");
  EXPECT_EQ(Http(node, "stock"), R"({"value":14})");
  EXPECT_EQ(Cli(port, "INCR greeting"), "ERR value is not an integer or out of range");
  // Hashes: fields of a document; a document written over HTTP reads as a hash.
  EXPECT_EQ(Cli(port, "HSET user:1 name ada age 36"), "2");
  EXPECT_EQ(Cli(port, "HSET user:1 age 37 lang en"), "1");
  EXPECT_EQ(Cli(port, "HINCRBY user:1 age 1"), "38");
  EXPECT_EQ(Http(node, "user:1"), R"({"age":38,"lang":"en","name":"ada"})");
  ASSERT_EQ(node.Client().Send("PUT", "/v1/docs/user:2", R"({"name":"bob","tags":["a"]})").status,
            200);
  EXPECT_EQ(Cli(port, "HGETALL user:2"), "name\nbob\ntags\n[\"a\"]");
  EXPECT_EQ(Cli(port, "HGET user:2 tags"), "[\"a\"]");
  EXPECT_EQ(Cli(port, "HMGET user:1 name nope", "--no-raw"), "1) \"ada\"\n2) (nil)");
  EXPECT_EQ(Cli(port, "TYPE user:1"), "hash");
  EXPECT_EQ(Cli(port, "TYPE stock"), "string");
  EXPECT_EQ(Cli(port, "TYPE nothing"), "none");
  EXPECT_EQ(Cli(port, "GET user:1"),
            "WRONGTYPE Operation against a key holding the wrong kind of value");
  EXPECT_EQ(Cli(port, "HDEL user:1 lang nope"), "1");
  EXPECT_EQ(Http(node, "user:1"), R"({"age":38,"name":"ada"})");
  // MSET is one transaction; MGET answers nil for what is missing or not a string.
  EXPECT_EQ(Cli(port, "MSET a 1 b two"), "OK");
  EXPECT_EQ(Cli(port, "MGET a b missing user:1", "--no-raw"),
            "1) \"1\"\n2) \"two\"\n3) (nil)\n4) (nil)");
  EXPECT_EQ(Cli(port, "EXISTS a b missing"), "2");
  EXPECT_EQ(Cli(port, "DEL a missing"), "1");
  EXPECT_EQ(Http(node, "a"), "404");
  // SET NX / XX are conditions checked in the commit path.
  EXPECT_EQ(Cli(port, "SET b other NX"), "");
  EXPECT_EQ(Cli(port, "SET fresh x XX"), "");
  EXPECT_EQ(Cli(port, "SET fresh x NX"), "OK");
  EXPECT_EQ(Cli(port, "SETNX fresh y"), "0");
  // What documents cannot be is refused with a reason.
  EXPECT_EQ(Cli(port, "SET t v EX 10"),
            "ERR expiration is not supported: documents live until deleted (docs/redis.md)");
  EXPECT_EQ(Cli(port, "SET _meridian/x 1").rfind("ERR", 0), 0u);
  EXPECT_EQ(Cli(port, "GET"), "ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(Cli(port, "NOSUCH x").rfind("ERR unknown command 'NOSUCH'", 0), 0u);
  // Keys by pattern, and a full SCAN with small pages.
  for (int i = 0; i < 25; ++i) {
    ASSERT_EQ(Cli(port, "SET scan:" + std::to_string(i) + " " + std::to_string(i)), "OK");
  }
  Shell scanned = RunShell("redis-cli -p " + std::to_string(port) +
                           " --scan --pattern 'scan:1*' | sort | tr '\\n' ' '");
  EXPECT_EQ(scanned.out,
            "scan:1 scan:10 scan:11 scan:12 scan:13 scan:14 scan:15 scan:16 "
            "scan:17 scan:18 scan:19 ");
  EXPECT_EQ(Cli(port, "KEYS 'user:*'"), "user:1\nuser:2");
  // RESP3.
  EXPECT_EQ(Cli(port, "HGETALL user:1", "-3 --no-raw"),
            "1# \"age\" => \"38\"\n2# \"name\" => \"ada\"");

  // redis-benchmark runs its SET, GET, INCR and HSET against the port.
  Shell bench = RunShell("redis-benchmark -h 127.0.0.1 -p " + std::to_string(port) +
                         " -c 8 -n 2000 -r 100 -t set,get,incr,hset --csv");
  EXPECT_EQ(bench.code, 0) << bench.out;
  for (const char* test : {"\"SET\"", "\"GET\"", "\"INCR\"", "\"HSET\""}) {
    EXPECT_NE(bench.out.find(test), std::string::npos) << test << " missing:\n" << bench.out;
  }
  EXPECT_EQ(bench.out.find("rror"), std::string::npos) << bench.out;
  const std::string counters = Cli(port, "KEYS 'counter:*'");
  ASSERT_FALSE(counters.empty());
  const std::string counter = counters.substr(0, counters.find('\n'));
  EXPECT_NE(std::stoll(Cli(port, "GET " + counter)), 0) << counter;
}

TEST(RespPort, AuthAndTlsAreTheNodes) {
  TempDir dir;
  const TestCa ca = MakeTestCa(dir.path() + "/ca", "ca");
  const TestCert cert = MakeTestCert(ca, "us");
  const std::string secret = "resp-test-secret-0123456789abcdef0123456789";
  const std::string secret_path = dir.path() + "/jwt.key";
  std::ofstream(secret_path) << secret << "\n";
  NodeOptions options;
  options.resp = true;
  options.https_ca_file = ca.ca_file;
  options.extra_toml = "[storage]\nsync = false\n[auth]\njwt_secret_file = \"" + secret_path +
                       "\"\n[tls]\ncert_file = \"" + cert.cert_file + "\"\nkey_file = \"" +
                       cert.key_file + "\"\nca_file = \"" + ca.ca_file + "\"\n";
  NodeProcess node(options);
  ASSERT_TRUE(node.Start()) << node.log();
  const uint16_t port = node.resp_port();
  const std::string tls = "--tls --cacert " + ca.ca_file;
  const std::string writer = auth::MintToken(TokenClaims({"app/"}, {"app/"}), secret).value();
  const std::string reader = auth::MintToken(TokenClaims({"app/"}, {}), secret).value();

  // Plaintext does not reach a TLS port.
  EXPECT_NE(Cli(port, "PING"), "PONG");
  EXPECT_EQ(Cli(port, "PING", tls), "NOAUTH Authentication required.");
  EXPECT_NE(Cli(port, "PING", tls + " --pass not-a-token").find("WRONGPASS"), std::string::npos);
  EXPECT_EQ(Cli(port, "SET app/x 1", tls + " --pass " + writer), "OK");
  EXPECT_EQ(Cli(port, "GET app/x", tls + " --pass " + reader), "1");
  EXPECT_EQ(Cli(port, "SET app/x 2", tls + " --pass " + reader).rfind("NOPERM", 0), 0u);
  EXPECT_EQ(Cli(port, "GET other", tls + " --pass " + writer).rfind("NOPERM", 0), 0u);
  EXPECT_EQ(Cli(port, "GET app/x", tls + " --pass " + writer), "1");  // the refused SET did nothing
  // HELLO 3 with AUTH, as RESP3 clients authenticate.
  EXPECT_NE(Cli(port, "HELLO 3 AUTH default " + writer, tls).find("proto"), std::string::npos);
}

// The Python client used by the cluster test: failover between regions' Redis ports, WAIT, and
// keyspace notifications.
constexpr const char* kClusterClient = R"PY(
import json, sys, time, redis

us, eu, asia = (int(p) for p in sys.argv[1:4])
phase = sys.argv[4]

def connect(port):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)

def until(fn, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.02)
    return fn()

result = {}
if phase == "replicate":
    a, b, c = connect(us), connect(eu), connect(asia)
    p = b.pubsub()
    p.psubscribe("__keyspace@0__:job:*")
    until(lambda: p.get_message(timeout=0.1))  # the psubscribe confirmation
    a.set("job:1", "queued")
    result["wait"] = a.wait(2, 10000)  # both other regions hold it
    result["asia_reads"] = c.get("job:1")
    message = until(lambda: p.get_message(timeout=0.1))
    result["notification"] = [message["channel"], message["data"]] if message else None
    # Concurrent increments of one counter in three regions all count.
    for client in (a, b, c):
        for _ in range(10):
            client.incrby("hits", 1)
    result["hits"] = until(lambda: all(x.get("hits") == "30" for x in (a, b, c)) and "30")
    # A pipeline's SETs commit together, in order: the last value stays, NX sees the SET before it.
    p = a.pipeline(transaction=False)
    for i in range(100):
        p.set("pipe:last", i)
        p.set("pipe:%d" % i, i)
    p.set("pipe:nx", "first", nx=True)
    p.set("pipe:nx", "second", nx=True)
    p.get("pipe:last")
    p.get("pipe:nx")
    answers = p.execute()
    result["pipeline"] = [answers.count(True), answers[-4:]]
    # INCR answers the value just after its own increment: pipelined and from concurrent
    # connections of one region, the answers are 1..N exactly once each.
    p = a.pipeline(transaction=False)
    for _ in range(50):
        p.incr("seq")
    result["pipelined_incr"] = p.execute() == list(range(1, 51))
    # HSET counts the fields new to the document just before it, in the pipeline's order.
    p = a.pipeline(transaction=False)
    p.hset("pipe:h", "f1", 1)
    p.hset("pipe:h", "f1", 2)
    p.hset("pipe:h", mapping={"f1": 3, "f2": 4})
    result["pipelined_hset"] = p.execute()
    # MSET and DEL join a pipeline's batch too: DEL counts the keys that existed just before it
    # (a key named twice once), after the MSET before it and before the SET after it.
    p = a.pipeline(transaction=False)
    p.mset({"pipe:m1": "1", "pipe:m2": "2"})
    p.delete("pipe:m1", "pipe:m2", "pipe:m1", "pipe:none")
    p.delete("pipe:m1")
    p.set("pipe:m2", "back")
    p.unlink("pipe:m2")
    p.exists("pipe:m1", "pipe:m2")
    result["pipelined_del"] = p.execute()
    import threading
    tickets = []
    def take():
        mine = connect(us)
        got = [mine.incr("ticket") for _ in range(50)]
        tickets.extend(got)
    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    result["tickets"] = sorted(tickets) == list(range(1, 201))
    a.hset("h", mapping={"x": 1, "y": "two"})
    result["hash_in_asia"] = until(lambda: c.hgetall("h"))
elif phase == "failover":
    # A client that knows every region's port writes through its own, and moves to the next when
    # its region stops answering.
    ports = [us, eu, asia]
    current = 0
    client = connect(ports[current])
    acknowledged = 0
    failovers = 0
    for i in range(int(sys.argv[5])):
        for attempt in range(20):
            try:
                client.incr("orders")
                client.set("order:%d" % i, "placed")
                acknowledged += 1
                break
            except (redis.ConnectionError, redis.TimeoutError):
                current = (current + 1) % len(ports)
                client = connect(ports[current])
                failovers += 1
                time.sleep(0.05)
        if i == 20:
            open(sys.argv[6], "w").write("ready")  # the test may now kill the region
            until(lambda: not __import__("os").path.exists(sys.argv[6]), 20)
    result["acknowledged"] = acknowledged
    result["failovers"] = failovers
    result["region"] = ports[current]
print(json.dumps(result))
)PY";

TEST(RespPort, APythonClientAcrossRegionsWithFailover) {
  ClusterOptions options;
  options.resp = true;
  options.extra_toml += "[storage]\nsync = false\n";
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  TempDir dir;
  const std::string ports = std::to_string(cluster.node("us").resp_port()) + " " +
                            std::to_string(cluster.node("eu").resp_port()) + " " +
                            std::to_string(cluster.node("asia").resp_port());
  std::string output;
  json replicated = Python(dir, kClusterClient, ports + " replicate", &output);
  ASSERT_TRUE(replicated.is_object()) << output;
  EXPECT_EQ(replicated["wait"], 2) << output;
  EXPECT_EQ(replicated["asia_reads"], "queued") << output;
  EXPECT_EQ(replicated["notification"], json::array({"__keyspace@0__:job:1", "set"})) << output;
  EXPECT_EQ(replicated["hits"], "30") << output;
  EXPECT_EQ(replicated["hash_in_asia"], json({{"x", "1"}, {"y", "two"}})) << output;
  EXPECT_EQ(replicated["pipelined_incr"], true) << output;
  EXPECT_EQ(replicated["pipelined_hset"], json::array({1, 0, 1})) << output;
  EXPECT_EQ(replicated["pipelined_del"], json::array({true, 2, 0, true, 1, 0})) << output;
  EXPECT_EQ(replicated["tickets"], true) << output;
  EXPECT_EQ(replicated["pipeline"], json::array({201, json::array({true, nullptr, "99", "first"})}))
      << output;

  // Failover: us is killed while the client writes through it; the client moves on to eu and
  // every write it saw acknowledged is there once us is back and the regions converged.
  const std::string flag = dir.path() + "/killed";
  const int writes = 60;
  std::thread killer([&] {
    for (int i = 0; i < 2000 && !std::ifstream(flag).good(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    cluster.node("us").Kill();
    std::remove(flag.c_str());
  });
  json failover = Python(dir, kClusterClient,
                         ports + " failover " + std::to_string(writes) + " " + flag, &output);
  killer.join();
  ASSERT_TRUE(failover.is_object()) << output;
  EXPECT_EQ(failover["acknowledged"], writes) << output;
  EXPECT_GE(failover["failovers"].get<int>(), 1) << output;
  EXPECT_NE(failover["region"], cluster.node("us").resp_port()) << output;
  ASSERT_TRUE(cluster.node("us").Start()) << cluster.node("us").log();
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(std::chrono::seconds(30), &why)) << why;
  for (const std::string& region : cluster.regions()) {
    // An increment acknowledged and then retried after the failover may count twice (INCR is
    // not idempotent); none is lost.
    const std::string orders = Cli(cluster.node(region).resp_port(), "GET orders");
    EXPECT_GE(std::stoi(orders), writes) << region;
    EXPECT_EQ(cluster.Documents(region, "order:").size(), static_cast<size_t>(writes)) << region;
  }
}

}  // namespace
}  // namespace meridian::testing
