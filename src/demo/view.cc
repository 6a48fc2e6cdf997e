#include "demo/view.h"

#include <cstdio>
#include <sstream>

namespace meridian::demo {
namespace {

using nlohmann::json;

constexpr const char* kNone = "—";

// `text` padded with spaces to `width` characters (UTF-8 aware), right-aligned unless `left`.
std::string Pad(const std::string& text, size_t width, bool left = false) {
  size_t chars = 0;
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;
  const std::string fill(width > chars ? width - chars : 0, ' ');
  return left ? text + fill : fill + text;
}

std::string Fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string Clock(int seconds) {
  char text[16];
  std::snprintf(text, sizeof text, "%02d:%02d", seconds / 60, seconds % 60);
  return text;
}

}  // namespace

std::vector<client::HttpClient> RegionClients(const Layout& layout) {
  std::vector<client::HttpClient> clients;
  for (size_t i = 0; i < layout.regions.size(); ++i) {
    clients.push_back(layout.Client(static_cast<int>(i), std::chrono::seconds(3)));
  }
  return clients;
}

std::vector<json> PollStatus(std::vector<client::HttpClient>& clients) {
  std::vector<json> status;
  for (client::HttpClient& client : clients) {
    const client::HttpResponse response = client.Get("/v1/status");
    json parsed = response.status == 200 ? json::parse(response.body, nullptr, false) : json();
    status.push_back(parsed.is_object() ? std::move(parsed) : json());
  }
  return status;
}

std::string Show(const json& value, const std::vector<std::string>& path, int decimals) {
  const json* at = &value;
  for (const std::string& name : path) {
    if (!at->is_object() || !at->contains(name)) return kNone;
    at = &(*at)[name];
  }
  if (at->is_number_integer() || at->is_number_unsigned()) return at->dump();
  if (at->is_number_float()) return Fixed(at->get<double>(), decimals);
  if (at->is_boolean()) return at->get<bool>() ? "up" : "down";
  if (at->is_string()) return at->get<std::string>();
  return kNone;
}

View::View(const Layout& layout, const Workload& workload, bool tty, int duration_s)
    : layout_(layout),
      workload_(workload),
      tty_(tty),
      duration_s_(duration_s),
      clients_(RegionClients(layout)),
      last_acked_(layout.regions.size(), 0),
      last_update_(std::chrono::steady_clock::now()) {}

void View::Update(std::chrono::steady_clock::duration elapsed) {
  const std::vector<json> status = PollStatus(clients_);
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - last_update_).count();
  last_update_ = now;
  std::vector<double> rates;
  for (size_t i = 0; i < layout_.regions.size(); ++i) {
    const uint64_t acked = workload_.acked(static_cast<int>(i));
    rates.push_back(seconds > 0 ? static_cast<double>(acked - last_acked_[i]) / seconds : 0);
    last_acked_[i] = acked;
  }
  const int elapsed_s =
      static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count());
  const std::string text = tty_ ? Screen(status, rates, elapsed_s) : Line(status, rates, elapsed_s);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

std::vector<std::string> View::Pair(const json& receiver, const std::string& origin) const {
  std::vector<std::string> figures = {
      Show(receiver, {"origins", origin, "lag_events"}),
      Show(receiver, {"origins", origin, "lag_ms"}, 0),
      Show(receiver, {"origins", origin, "visibility_ms", "p50"}),
      Show(receiver, {"origins", origin, "visibility_ms", "p99"}),
      kNone,
  };
  if (receiver.is_object() && receiver.contains("peers") && receiver["peers"].is_array()) {
    for (const json& peer : receiver["peers"]) {
      if (!peer.is_object() || peer.value("name", "") != origin) continue;
      if (figures[0] == kNone) figures[0] = Show(peer, {"lag_events"});
      if (figures[1] == kNone) figures[1] = Show(peer, {"lag_ms"}, 0);
      figures[4] = Show(peer, {"connected"});
    }
  }
  return figures;
}

std::string View::Screen(const std::vector<json>& status, const std::vector<double>& rates,
                         int elapsed_s) const {
  std::ostringstream out;
  out << "\x1b[H\x1b[J";  // home, clear the screen below
  out << "Meridian demo: " << layout_.regions.size() << " regions on this machine, "
      << Clock(elapsed_s) << (duration_s_ > 0 ? " of " + Clock(duration_s_) : std::string()) << "\n"
      << layout_.DelaySummary() << "\n"
      << (layout_.secure() ? "TLS and tokens on; call us: " : "call us: ") << layout_.CallHint(0)[0]
      << "\n\n";
  out << Pad("region", 8, true) << Pad("writes/s", 10) << Pad("acked", 10) << Pad("failed", 8)
      << Pad("documents", 11) << Pad("conflicts", 11) << "   frontier";
  for (size_t j = 0; j < layout_.regions.size(); ++j) {
    out << (j ? " / " : " ") << layout_.regions[j].name;
  }
  out << "\n";
  for (size_t i = 0; i < layout_.regions.size(); ++i) {
    const int r = static_cast<int>(i);
    out << Pad(layout_.regions[i].name, 8, true) << Pad(Fixed(rates[i], 0), 10)
        << Pad(std::to_string(workload_.acked(r)), 10)
        << Pad(std::to_string(workload_.failed(r) + workload_.unanswered(r)), 8)
        << Pad(Show(status[i], {"documents"}), 11) << Pad(Show(status[i], {"conflicts"}), 11)
        << "   ";
    for (size_t j = 0; j < layout_.regions.size(); ++j) {
      out << (j ? " / " : "") << Show(status[i], {"frontier", layout_.regions[j].name});
    }
    out << (status[i].is_null() ? "   (no answer)" : "") << "\n";
  }
  out << "\n"
      << Pad("origin → receiver", 20, true) << Pad("lag events", 12) << Pad("lag ms", 9)
      << Pad("visible p50 ms", 16) << Pad("p99 ms", 9) << Pad("link", 7) << "\n";
  for (size_t to = 0; to < layout_.regions.size(); ++to) {
    for (size_t from = 0; from < layout_.regions.size(); ++from) {
      if (from == to) continue;
      const auto figures = Pair(status[to], layout_.regions[from].name);
      out << Pad(layout_.regions[from].name + " → " + layout_.regions[to].name, 20, true)
          << Pad(figures[0], 12) << Pad(figures[1], 9) << Pad(figures[2], 16) << Pad(figures[3], 9)
          << Pad(figures[4], 7) << "\n";
    }
  }
  out << "\nCtrl-C: stop the workload and prove convergence\n";
  return out.str();
}

std::string View::Line(const std::vector<json>& status, const std::vector<double>& rates,
                       int elapsed_s) const {
  std::ostringstream out;
  out << "[" << Pad(std::to_string(elapsed_s), 4) << "s] writes/s";
  for (size_t i = 0; i < layout_.regions.size(); ++i) {
    out << " " << layout_.regions[i].name << " " << Fixed(rates[i], 0);
  }
  out << " | documents";
  for (const json& region : status) out << " " << Show(region, {"documents"});
  out << " | conflicts";
  for (const json& region : status) out << " " << Show(region, {"conflicts"});
  out << " | lag ms, p99 ms";
  for (size_t to = 0; to < layout_.regions.size(); ++to) {
    for (size_t from = 0; from < layout_.regions.size(); ++from) {
      if (from == to) continue;
      const auto figures = Pair(status[to], layout_.regions[from].name);
      out << " " << layout_.regions[from].name << "→" << layout_.regions[to].name << " "
          << figures[1] << "," << figures[3];
    }
  }
  out << "\n";
  return out.str();
}

}  // namespace meridian::demo
