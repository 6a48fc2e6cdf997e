#include "sim/script.h"

#include <charconv>
#include <memory>
#include <optional>
#include <sstream>

#include "sim/simulation.h"

namespace meridian::sim {
namespace {

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  std::string word;
  while (in >> word) words.push_back(word);
  return words;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  std::istringstream in(text);
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

bool ParseUint(std::string_view text, uint64_t* value) {
  auto [ptr, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && ptr == text.data() + text.size();
}

// A value as written in a step: JSON when it parses as JSON, else a string.
std::string ValueOf(const std::string& text) {
  auto canonical = core::CanonicalJson(text);
  if (canonical.ok()) return *canonical;
  std::string quoted;
  core::AppendJsonString(text, &quoted);
  return quoted;
}

class Runner {
 public:
  // The output of one step; throws std::invalid_argument for a step it cannot parse.
  std::string Step(const std::vector<std::string>& words) {
    const std::string& command = words.at(0);
    if (command == "cluster") return Cluster(words);
    if (sim_ == nullptr) Cluster({"cluster", "us", "eu", "asia"});
    if (command == "write" || command == "put" || command == "incr" || command == "delete") {
      return WriteStep(words);
    }
    if (command == "get") return GetStep(words);
    if (command == "partition" || command == "heal") return NetworkStep(words);
    if (command == "crash" || command == "restart") {
      const int index = Region(words.at(1));
      if (command == "crash") {
        sim_->Crash(index);
      } else {
        sim_->Restart(index);
      }
      return Notes();
    }
    if (command == "deliver") {
      const bool quiet = sim_->RunUntilQuiet(30'000);
      return Notes() + (quiet ? "" : "(still sending after 30 s)\n");
    }
    if (command == "run") {
      uint64_t ms = 0;
      if (words.size() != 2 || !ParseUint(words[1], &ms)) throw std::invalid_argument("run MS");
      sim_->RunFor(ms);
      return Notes();
    }
    if (command == "converge") {
      const std::optional<uint64_t> took = sim_->RunUntilConverged(120'000);
      std::string out = Notes();
      if (!took) return out + "did not converge within 120 s\n";
      bool equal = true;
      for (int i = 1; i < sim_->size(); ++i) equal = equal && sim_->Digest(i) == sim_->Digest(0);
      return out + "converged after " + std::to_string(*took) + " ms; digests " +
             (equal ? "equal" : "DIFFER") + "\n";
    }
    if (command == "frontiers") {
      std::string out;
      for (int i = 0; i < sim_->size(); ++i) {
        out += sim_->NameAt(i) + ": " + Named(sim_->Frontier(i)) + "\n";
      }
      return out;
    }
    if (command == "conflicts") {
      std::string out;
      for (const std::string& record : sim_->Conflicts(Region(words.at(1)), 10)) {
        out += record + "\n";
      }
      return out.empty() ? "(none)\n" : out;
    }
    if (command == "links") return LinksStep(Region(words.at(1)));
    if (command == "faults") return FaultsStep(words);
    if (command == "clock") {
      int64_t delta = 0;
      const std::string& text = words.at(2);
      auto [ptr, error] =
          std::from_chars(text.data() + (text[0] == '+' ? 1 : 0), text.data() + text.size(), delta);
      if (error != std::errc() || ptr != text.data() + text.size()) {
        throw std::invalid_argument("clock REGION +MS|-MS");
      }
      sim_->JumpClock(Region(words.at(1)), delta);
      return Notes();
    }
    if (command == "check") {
      sim_->TakeNotes();
      std::vector<std::string> failures = sim_->Check(false);
      if (failures.empty()) {
        return "ok: " + std::to_string(sim_->acknowledged().size()) + " writes, " +
               std::to_string(sim_->metadata_entries()) + " metadata entries (" +
               std::to_string(sim_->metadata_folded()) + " once folded)\n";
      }
      std::string out;
      for (const std::string& failure : failures) out += failure + "\n";
      return out;
    }
    throw std::invalid_argument("unknown step " + command);
  }

 private:
  std::string Cluster(const std::vector<std::string>& words) {
    std::vector<std::string> names;
    Options options;
    options.jitter = 0;  // scripted latencies are exact, so traces read easily
    uint64_t rtt = 100;
    for (size_t i = 1; i < words.size(); ++i) {
      if (words[i].starts_with("rtt=")) {
        if (!ParseUint(words[i].substr(4), &rtt)) throw std::invalid_argument("rtt=MS");
      } else if (words[i].starts_with("seed=")) {
        if (!ParseUint(words[i].substr(5), &options.seed)) throw std::invalid_argument("seed=N");
      } else {
        names.push_back(words[i]);
      }
    }
    options.rtt_ms = rtt;
    sim_ = std::make_unique<Simulation>(names, options, nullptr);
    sim_->CollectNotes(true);
    // Every stream up before the first step.
    sim_->RunFor(1000);
    sim_->TakeNotes();
    std::string out;
    for (const std::string& name : names) out += (out.empty() ? "" : " ") + name;
    return out + ": connected, rtt " + std::to_string(rtt) + " ms\n";
  }

  int Region(const std::string& name) const {
    const int index = sim_->IndexOf(name);
    if (index < 0) throw std::invalid_argument("unknown region " + name);
    return index;
  }

  std::string Named(const core::VersionVector& vector) const {
    std::string out;
    for (const auto& entry : vector.entries()) {
      out += (out.empty() ? "" : " ") + RegionNames().at(entry.origin - 1) + ":" +
             std::to_string(entry.seq);
    }
    return out.empty() ? "(nothing)" : out;
  }

  std::string Notes() {
    std::string out;
    for (const std::string& note : sim_->TakeNotes()) out += note + "\n";
    return out;
  }

  std::string WriteStep(const std::vector<std::string>& words) {
    if (words.size() < 3) throw std::invalid_argument(words[0] + " REGION KEY [field=value...]");
    const int index = Region(words[1]);
    core::Operation op;
    op.kind = words[0] == "write"  ? core::OpKind::kSet
              : words[0] == "put"  ? core::OpKind::kReplace
              : words[0] == "incr" ? core::OpKind::kIncrement
                                   : core::OpKind::kDelete;
    for (size_t i = 3; i < words.size(); ++i) {
      const size_t equals = words[i].find('=');
      if (equals == std::string::npos) throw std::invalid_argument("field=value: " + words[i]);
      const std::string field = words[i].substr(0, equals);
      const std::string value = words[i].substr(equals + 1);
      if (op.kind == core::OpKind::kIncrement) {
        int64_t delta = 0;
        auto [ptr, error] = std::from_chars(value.data(), value.data() + value.size(), delta);
        if (error != std::errc() || ptr != value.data() + value.size()) {
          throw std::invalid_argument("incr takes integers: " + words[i]);
        }
        op.counters.push_back({field, delta});
      } else {
        op.fields.push_back({field, ValueOf(value)});
      }
    }
    if (Status status = core::CheckCanonicalOperation(&op, core::Limits{}); !status.ok()) {
      return Notes() + "refused: " + status.message() + "\n";
    }
    auto receipt = sim_->Write(index, words[2], std::move(op));
    std::string out = Notes();
    if (!receipt.ok()) return out + "refused: " + receipt.status().message() + "\n";
    return out + RegionNames().at(receipt->dot.origin - 1) + ":" +
           std::to_string(receipt->dot.seq) + "\n";
  }

  std::string GetStep(const std::vector<std::string>& words) {
    if (words.size() == 2) {
      std::string out;
      for (int i = 0; i < sim_->size(); ++i) {
        out += sim_->NameAt(i) + ": " + sim_->Get(i, words[1]).value_or("(not found)") + "\n";
      }
      return out;
    }
    if (words.size() != 3) throw std::invalid_argument("get [REGION] KEY");
    return sim_->Get(Region(words[1]), words[2]).value_or("(not found)") + "\n";
  }

  std::string NetworkStep(const std::vector<std::string>& words) {
    if (words[0] == "heal" && words.size() == 1) {
      sim_->HealAll();
      return Notes();
    }
    if (words.size() != 2) throw std::invalid_argument(words[0] + " A|B, A>B or A|*");
    const std::string& spec = words[1];
    const size_t at = spec.find_first_of("|>");
    if (at == std::string::npos) throw std::invalid_argument("A|B, A>B or A|*");
    const bool symmetric = spec[at] == '|';
    const int a = Region(spec.substr(0, at));
    std::vector<int> others;
    if (spec.substr(at + 1) == "*") {
      for (int i = 0; i < sim_->size(); ++i) {
        if (i != a) others.push_back(i);
      }
    } else {
      others.push_back(Region(spec.substr(at + 1)));
    }
    for (int b : others) {
      if (words[0] == "partition") {
        sim_->Cut(a, b, symmetric);
      } else {
        sim_->Mend(a, b, symmetric);
      }
    }
    return Notes();
  }

  std::string LinksStep(int index) {
    std::string out;
    for (const replication::Links::View& view : sim_->LinkViews(index)) {
      out += RegionNames().at(view.peer - 1) + ": " + (view.connected ? "connected" : "down");
      if (view.relayed_by) out += ", relayed by " + RegionNames().at(*view.relayed_by - 1);
      if (!view.relaying.empty()) {
        out += ", relaying";
        for (core::RegionId origin : view.relaying) out += " " + RegionNames().at(origin - 1);
      }
      out += "\n";
    }
    return out.empty() ? "(down)\n" : out;
  }

  std::string FaultsStep(const std::vector<std::string>& words) {
    FaultOptions& faults = sim_->faults();
    for (size_t i = 1; i < words.size(); ++i) {
      const size_t equals = words[i].find('=');
      const std::string name = words[i].substr(0, equals);
      const double value = equals == std::string::npos ? 0 : std::stod(words[i].substr(equals + 1));
      if (name == "loss") {
        faults.loss = value;
      } else if (name == "duplicate") {
        faults.duplicate = value;
      } else if (name == "reorder") {
        faults.reorder = value;
      } else {
        throw std::invalid_argument("faults loss=P duplicate=P reorder=P");
      }
    }
    return "ok\n";
  }

  std::unique_ptr<Simulation> sim_;
};

}  // namespace

ScriptResult RunScript(const std::string& name, const std::string& text) {
  ScriptResult result;
  Runner runner;
  const std::vector<std::string> lines = Lines(text);
  size_t i = 0;
  while (i < lines.size()) {
    const std::string& line = lines[i];
    if (line.empty() || line.starts_with("#")) {
      result.rewritten += line + "\n";
      ++i;
      continue;
    }
    const size_t step_line = i + 1;
    const std::string step = line;
    ++i;
    std::string expected;
    if (i < lines.size() && lines[i] == "----") {
      ++i;
      while (i < lines.size() && !lines[i].empty()) expected += lines[i++] + "\n";
    }
    std::string actual;
    try {
      actual = runner.Step(Split(step));
    } catch (const std::exception& error) {
      actual = std::string("error: ") + error.what() + "\n";
    }
    result.rewritten += step + "\n----\n" + actual;
    if (actual != expected) {
      result.mismatches.push_back(name + ":" + std::to_string(step_line) + ": " + step +
                                  "\nexpected:\n" + expected + "actual:\n" + actual);
    }
    if (i < lines.size() && lines[i].empty()) {
      result.rewritten += "\n";
      ++i;
    } else if (i < lines.size()) {
      result.rewritten += "\n";
    }
  }
  return result;
}

}  // namespace meridian::sim
