#include "client/kvcakectl/commands.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <thread>

#include "common/progress.h"
#include "common/split.h"

namespace kvcake::ctl {
namespace {

using json = nlohmann::json;

// An API call's outcome: the parsed JSON or an exit code with the message
// already printed.
struct Call {
  int exit = kExitOk;
  json body;
};

Call DoCall(const CtlOptions& o, std::string_view method, const std::string& target,
            const std::string& body, std::ostream& err) {
  Call c;
  HttpClient client(o.http);
  auto r = client.Request(method, target, body);
  if (!r.ok()) {
    err << "kvcakectl: " << r.status().message() << "\n";
    c.exit = kExitUnavailable;
    return c;
  }
  json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (r->status == 401) {
    err << "kvcakectl: authentication failed (HTTP 401"
        << (j.is_object() && j.contains("message") ? ": " + j["message"].get<std::string>() : "")
        << "); check --token_file / KVCAKE_ADMIN_TOKEN_FILE\n";
    c.exit = kExitAuth;
    return c;
  }
  if (r->status >= 400) {
    std::string code = j.is_object() && j.contains("code") ? j["code"].get<std::string>() : "";
    std::string msg =
        j.is_object() && j.contains("message") ? j["message"].get<std::string>() : r->body;
    err << "kvcakectl: " << method << " " << target << " failed: HTTP " << r->status
        << (code.empty() ? "" : " " + code) << ": " << msg << "\n";
    c.exit = kExitApiError;
    return c;
  }
  if (j.is_discarded()) {
    err << "kvcakectl: the daemon's answer is not JSON (HTTP " << r->status << ")\n";
    c.exit = kExitApiError;
    return c;
  }
  c.body = std::move(j);
  return c;
}

std::string Str(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "-";
  if (j.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3f", j.get<double>());
    return buf;
  }
  return j.dump();
}

uint64_t U64(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number_unsigned() ? j[key].get<uint64_t>() : 0;
}

std::string Percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%.1f%%", 100.0 * static_cast<double>(part) / whole);
  return buf;
}

std::string Duration(double seconds) {
  uint64_t s = static_cast<uint64_t>(seconds);
  char buf[48];
  if (s >= 86400) {
    std::snprintf(buf, sizeof(buf), "%llud %02lluh%02llum", (unsigned long long)(s / 86400),
                  (unsigned long long)(s % 86400 / 3600), (unsigned long long)(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%02llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                  (unsigned long long)(s % 3600 / 60), (unsigned long long)(s % 60));
  }
  return buf;
}

std::string FilterQuery(const CtlOptions& o, bool with_limit) {
  std::string q;
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    q += q.empty() ? "?" : "&";
    q += k;
    q += "=";
    q += UrlEncode(v);
  };
  add("ns", o.ns);
  add("hash", o.hash);
  add("layer", o.layer);
  add("tier", o.tier);
  if (with_limit) add("limit", std::to_string(o.limit));
  return q;
}

json FilterBody(const CtlOptions& o) {
  json b = json::object();
  if (!o.ns.empty()) b["ns"] = o.ns;
  if (!o.hash.empty()) b["hash"] = o.hash;
  if (!o.layer.empty()) b["layer"] = o.layer;
  if (!o.tier.empty()) b["tier"] = o.tier;
  return b;
}

void PrintJson(std::ostream& out, const json& j) { out << j.dump(2) << "\n"; }

std::vector<std::vector<std::string>> TierRows(const json& status) {
  std::vector<std::vector<std::string>> rows = {
      {"TIER", "CAPACITY", "USED", "USED%", "BLOCKS", "RANKING"}};
  for (const auto& t : status.value("tiers", json::array())) {
    uint64_t cap = U64(t, "capacity_bytes"), used = U64(t, "used_bytes");
    rows.push_back({Str(t["tier"]), HumanBytes(cap), HumanBytes(used), Percent(used, cap),
                    std::to_string(U64(t, "blocks")), t.value("ranking", std::string("-"))});
  }
  return rows;
}

int CmdStatus(const CtlOptions& o, std::ostream& out, std::ostream& err) {
  Call c = DoCall(o, "GET", "/v1/status", "", err);
  if (c.exit != kExitOk) return c.exit;
  if (o.json) {
    PrintJson(out, c.body);
    return kExitOk;
  }
  const json& s = c.body;
  std::string transports;
  for (const auto& t : s.value("transports", json::array())) {
    transports += (transports.empty() ? "" : ", ") + Str(t);
  }
  out << "kvcaked " << Str(s["version"]) << "  node " << Str(s["node_id"]) << "  up "
      << Duration(s.value("uptime_seconds", 0.0)) << "  policy " << Str(s["policy"])
      << (s.value("draining", false) ? "  DRAINING" : "") << "\n";
  out << "transports: " << (transports.empty() ? "-" : transports) << "\n\n";
  out << RenderTable(TierRows(s));
  const json peers = s.value("peers", json::array());
  if (!peers.empty()) {
    std::vector<std::vector<std::string>> rows = {{"PEER", "TRANSPORT"}};
    for (const auto& p : peers) rows.push_back({Str(p["peer"]), Str(p["transport"])});
    out << "\n" << RenderTable(rows);
  }
  return kExitOk;
}

int CmdLookup(const CtlOptions& o, std::ostream& out, std::ostream& err) {
  if (o.ns.empty() || o.tokens.empty() == o.hashes.empty()) {
    err << "kvcakectl lookup: give --ns and one of --tokens=T1,T2,... and --hashes=H1,H2,...\n";
    return kExitUsage;
  }
  json body = {{"ns", o.ns}};
  if (!o.layer.empty()) {
    char* end = nullptr;
    const unsigned long layer = std::strtoul(o.layer.c_str(), &end, 10);
    if (*end != '\0' || layer > UINT32_MAX) {
      err << "kvcakectl lookup: bad --layer '" << o.layer << "'\n";
      return kExitUsage;
    }
    body["layer"] = layer;
  }
  if (!o.tokens.empty()) {
    json tokens = json::array();
    for (const std::string& t : SplitNonEmpty(o.tokens, ',')) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(t.c_str(), &end, 10);
      if (*end != '\0' || t[0] == '-' || v > UINT32_MAX) {
        err << "kvcakectl lookup: bad token '" << t << "' (want integers in [0, 2^32))\n";
        return kExitUsage;
      }
      tokens.push_back(v);
    }
    body["tokens"] = tokens;
  } else {
    body["hashes"] = SplitNonEmpty(o.hashes, ',');
  }
  Call c = DoCall(o, "POST", "/v1/lookup", body.dump(), err);
  if (c.exit != kExitOk) return c.exit;
  if (o.json) {
    PrintJson(out, c.body);
    return kExitOk;
  }
  const json& r = c.body;
  out << "this daemon holds " << U64(r, "local") << " of " << U64(r, "blocks") << " blocks (layer "
      << U64(r, "layer") << ")\n";
  const json holders = r.value("holders", json::array());
  if (holders.empty()) {
    out << "no other cluster member holds a prefix of it\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NODE", "BLOCKS"}};
  for (const auto& h : holders) rows.push_back({Str(h["node"]), std::to_string(U64(h, "blocks"))});
  out << "\n" << RenderTable(rows);
  return kExitOk;
}

int CmdMembers(const CtlOptions& o, std::ostream& out, std::ostream& err) {
  Call c = DoCall(o, "GET", "/v1/cluster", "", err);
  if (c.exit != kExitOk) return c.exit;
  if (o.json) {
    PrintJson(out, c.body);
    return kExitOk;
  }
  const json& s = c.body;
  if (!s.value("enabled", false)) {
    out << "this daemon runs alone (no --cluster_etcd)\n";
    return kExitOk;
  }
  out << "cluster " << Str(s["cluster_name"]) << "  node " << Str(s["node_id"]) << "  membership "
      << Str(s["state"]) << "\n\n";
  const double now_ms = static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "ADDRESS", "ADMIN", "STATE", "HOST", "SSD", "GPU", "UP", "LAST_SEEN"}};
  for (const auto& m : s.value("members", json::array())) {
    const double start = m.value("start_time_unix_ms", 0.0);
    const double seen = m.value("last_seen_unix_ms", 0.0);
    std::string state = m.value("stale", false) ? "stale" : "live";
    if (m.value("self", false)) state += " (self)";
    rows.push_back({Str(m["node_id"]), Str(m["advertise_address"]),
                    m.value("admin_address", "").empty() ? "-" : Str(m["admin_address"]), state,
                    HumanBytes(static_cast<double>(U64(m, "host_capacity_bytes"))),
                    HumanBytes(static_cast<double>(U64(m, "ssd_capacity_bytes"))),
                    HumanBytes(static_cast<double>(U64(m, "gpu_capacity_bytes"))),
                    start > 0 ? Duration((now_ms - start) / 1000.0) : "-",
                    seen > 0 ? Duration((now_ms - seen) / 1000.0) + " ago" : "-"});
  }
  out << RenderTable(rows);
  const json counters = s.value("counters", json::object());
  if (!counters.empty()) {
    out << "\n";
    std::vector<std::vector<std::string>> crows = {{"COUNTER", "VALUE"}};
    for (const auto& [name, value] : counters.items()) {
      crows.push_back({name, std::to_string(value.get<uint64_t>())});
    }
    out << RenderTable(crows);
  }
  return kExitOk;
}

void PrintStats(const json& s, std::ostream& out) {
  out << "puts " << U64(s, "puts") << "  gets " << U64(s, "gets") << "  errors " << U64(s, "errors")
      << "  leases expired " << U64(s, "leases_expired") << "\n\n";
  std::vector<std::vector<std::string>> rows = {
      {"TIER", "HITS", "MISSES", "HIT%", "DROPS", "DROPPED BECAUSE"}};
  for (const auto& t : s.value("tiers", json::array())) {
    uint64_t h = U64(t, "hits"), m = U64(t, "misses");
    std::string why;
    const json reasons = t.value("drop_reasons", json::object());
    for (auto it = reasons.begin(); it != reasons.end(); ++it) {
      if (!it->is_number_unsigned() || it->get<uint64_t>() == 0) continue;
      why += (why.empty() ? "" : " ") + it.key() + "=" + std::to_string(it->get<uint64_t>());
    }
    rows.push_back({Str(t["tier"]), std::to_string(h), std::to_string(m), Percent(h, h + m),
                    std::to_string(U64(t, "drops")), why.empty() ? "-" : why});
  }
  out << RenderTable(rows);
  std::vector<std::vector<std::string>> moves = {{"MOVE", "FROM", "TO", "BLOCKS", "BYTES"}};
  for (const char* kind : {"promotions", "demotions"}) {
    for (const auto& p : s.value(kind, json::array())) {
      moves.push_back({kind == std::string("promotions") ? "promote" : "demote", Str(p["from"]),
                       Str(p["to"]), std::to_string(U64(p, "blocks")),
                       HumanBytes(static_cast<double>(U64(p, "bytes")))});
    }
  }
  if (moves.size() > 1) out << "\n" << RenderTable(moves);
}

int CmdStats(const CtlOptions& o, std::ostream& out, std::ostream& err) {
  Call c = DoCall(o, "GET", "/v1/stats", "", err);
  if (c.exit != kExitOk) return c.exit;
  if (o.json) {
    PrintJson(out, c.body);
  } else {
    PrintStats(c.body, out);
  }
  return kExitOk;
}

int CmdNamespaces(const CtlOptions& o, std::ostream& out, std::ostream& err) {
  Call c = DoCall(o, "GET", "/v1/namespaces", "", err);
  if (c.exit != kExitOk) return c.exit;
  if (o.json) {
    PrintJson(out, c.body);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "LAYERS", "BLOCK_TOKENS",
                                                 "LAYER_BLOCK", "DTYPE", "SERVING", "BLOCKS",
                                                 "BYTES"}};
  std::string budgets;
  for (const auto& n : c.body.value("namespaces", json::array())) {
    rows.push_back({Str(n["name"]), Str(n["id"]), Str(n["num_layers"]), Str(n["block_tokens"]),
                    HumanBytes(static_cast<double>(U64(n, "layer_block_bytes"))), Str(n["dtype"]),
                    n.value("serving", std::string("exact")), std::to_string(U64(n, "blocks")),
                    HumanBytes(static_cast<double>(U64(n, "bytes")))});
    const json budget_map = n.value("layer_budgets", json::object());
    for (const auto& [tier, list] : budget_map.items()) {
      budgets += "  " + Str(n["name"]) + " " + tier + ": " + list.dump() + "\n";
    }
  }
  out << RenderTable(rows);
  if (!budgets.empty()) out << "\nCAKE layer budgets (blocks per layer):\n" << budgets;
  return kExitOk;
}

int CmdList(const CtlOptions& o, std::ostream& out, std::ostream& err) {
  Call c = DoCall(o, "GET", "/v1/blocks" + FilterQuery(o, true), "", err);
  if (c.exit != kExitOk) return c.exit;
  if (o.json) {
    PrintJson(out, c.body);
    return kExitOk;
  }
  // Blocks carry namespace ids; the table shows names (the id where the
  // namespace list is unavailable).
  std::map<std::string, std::string> names;
  std::ostringstream ignored;
  Call ns = DoCall(o, "GET", "/v1/namespaces", "", ignored);
  for (const auto& n :
       ns.body.is_object() ? ns.body.value("namespaces", json::array()) : json::array()) {
    names[Str(n["id"])] = Str(n["name"]);
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAMESPACE", "HASH", "LAYER", "TIER", "SIZE", "STATE", "PINS", "SCORE", "LAST_ACCESS"}};
  for (const auto& b : c.body.value("blocks", json::array())) {
    auto name = names.find(Str(b["ns"]));
    rows.push_back({name != names.end() ? name->second : Str(b["ns"]), Str(b["hash"]),
                    Str(b["layer"]), Str(b["tier"]),
                    HumanBytes(static_cast<double>(U64(b, "size_bytes"))), Str(b["state"]),
                    Str(b["pin_count"]), Str(b["score"]), Str(b["last_access"])});
  }
  out << RenderTable(rows);
  uint64_t count = U64(c.body, "count");
  out << count << " block(s)" << (count >= o.limit ? " (limit reached; use --limit)" : "") << "\n";
  return kExitOk;
}

int CmdMutate(const CtlOptions& o, const std::string& cmd, std::ostream& out, std::ostream& err) {
  if (o.ns.empty()) {
    err << "kvcakectl " << cmd << ": --ns is required\n";
    return kExitUsage;
  }
  Call c = DoCall(o, "POST", "/v1/" + cmd, FilterBody(o).dump(), err);
  if (c.exit != kExitOk) return c.exit;
  if (o.json) {
    PrintJson(out, c.body);
  } else {
    std::string key = cmd == "evict" ? "evicted" : cmd == "pin" ? "pinned" : "unpinned";
    out << key << " " << U64(c.body, key.c_str()) << " block(s)\n";
    if (uint64_t n = U64(c.body, "skipped_pinned"); n > 0) {
      out << "skipped " << n << " operator-pinned block(s) (kvcakectl unpin releases them)\n";
    }
    if (uint64_t n = U64(c.body, "skipped_busy"); n > 0) {
      out << "skipped " << n
          << " block(s) in use (being written, or held by a client's get; try again)\n";
    }
  }
  return kExitOk;
}

std::string ProgressBar(const json& d) {
  uint64_t total = U64(d, "total_blocks"), moved = U64(d, "moved_blocks");
  double frac = total ? static_cast<double>(moved) / total : (d.value("done", false) ? 1.0 : 0.0);
  frac = std::clamp(frac, 0.0, 1.0);
  constexpr int kWidth = 30;
  int filled = static_cast<int>(std::lround(frac * kWidth));
  std::string bar = "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "]";
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%s %5.1f%%  %llu/%llu blocks  %s/%s", bar.c_str(), frac * 100,
                (unsigned long long)moved, (unsigned long long)total,
                HumanBytes(static_cast<double>(U64(d, "moved_bytes"))).c_str(),
                HumanBytes(static_cast<double>(U64(d, "total_bytes"))).c_str());
  return buf;
}

int CmdDrain(const CtlOptions& o, const std::vector<std::string>& args, std::ostream& out,
             std::ostream& err) {
  bool status_only = args.size() > 1 && args[1] == "status";
  if (args.size() > 1 && !status_only) {
    err << "kvcakectl drain: unknown argument '" << args[1] << "' (drain [status])\n";
    return kExitUsage;
  }
  Call c = status_only ? DoCall(o, "GET", "/v1/drain", "", err)
                       : DoCall(o, "POST", "/v1/drain", "", err);
  if (c.exit != kExitOk) return c.exit;
  json d = c.body;
  if (o.wait && !status_only) {
    // The live line goes to stderr on a terminal; the outcome to stdout.
    Progress progress("draining", Progress::Options{.enabled = !o.json});
    while (!d.value("done", false) && d.value("active", false)) {
      progress.Update(U64(d, "moved_blocks"), U64(d, "total_blocks"),
                      HumanBytes(static_cast<double>(U64(d, "moved_bytes"))) + "/" +
                          HumanBytes(static_cast<double>(U64(d, "total_bytes"))));
      std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
      std::ostringstream why;
      Call p = DoCall(o, "GET", "/v1/drain", "", why);
      if (p.exit != kExitOk) {
        progress.Done();  // the message starts on a clean line
        err << why.str();
        return p.exit;
      }
      d = p.body;
    }
  }
  if (o.json) {
    PrintJson(out, d);
  } else {
    out << ProgressBar(d) << "\n";
    if (d.contains("error")) out << "drain failed: " << Str(d["error"]) << "\n";
    out << (d.value("done", false)     ? "drain complete"
            : d.value("active", false) ? "draining"
                                       : "not draining")
        << "\n";
  }
  if (d.contains("error")) return kExitApiError;
  return kExitOk;
}

int CmdConfig(const CtlOptions& o, const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err) {
  if (args.size() < 2 || (args[1] != "get" && args[1] != "set")) {
    err << "kvcakectl config: use 'config get [NAME...]' or 'config set NAME=VALUE...'\n";
    return kExitUsage;
  }
  Call c;
  if (args[1] == "set") {
    if (args.size() < 3) {
      err << "kvcakectl config set: give at least one NAME=VALUE\n";
      return kExitUsage;
    }
    json body = json::object();
    for (size_t i = 2; i < args.size(); ++i) {
      size_t eq = args[i].find('=');
      if (eq == std::string::npos || eq == 0) {
        err << "kvcakectl config set: '" << args[i] << "' is not NAME=VALUE\n";
        return kExitUsage;
      }
      body[args[i].substr(0, eq)] = args[i].substr(eq + 1);
    }
    c = DoCall(o, "POST", "/v1/config", body.dump(), err);
  } else {
    c = DoCall(o, "GET", "/v1/config", "", err);
  }
  if (c.exit != kExitOk) return c.exit;
  json entries = c.body.value("config", json::array());
  if (args[1] == "get" && args.size() > 2) {
    json picked = json::array();
    for (size_t i = 2; i < args.size(); ++i) {
      bool found = false;
      for (const auto& e : entries) {
        if (e["name"] == args[i]) {
          picked.push_back(e);
          found = true;
        }
      }
      if (!found) {
        err << "kvcakectl config get: no knob named '" << args[i] << "'\n";
        return kExitApiError;
      }
    }
    entries = picked;
  }
  if (o.json) {
    PrintJson(out, json{{"config", entries}});
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "VALUE", "DESCRIPTION"}};
  for (const auto& e : entries)
    rows.push_back({Str(e["name"]), Str(e["value"]), Str(e["description"])});
  out << RenderTable(rows);
  return kExitOk;
}

int CmdTop(const CtlOptions& o, std::ostream& out, std::ostream& err) {
  json prev_stats;
  auto prev_time = std::chrono::steady_clock::now();
  for (int i = 0; o.iterations <= 0 || i < o.iterations; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
    Call st = DoCall(o, "GET", "/v1/status", "", err);
    if (st.exit != kExitOk) return st.exit;
    Call sx = DoCall(o, "GET", "/v1/stats", "", err);
    if (sx.exit != kExitOk) return sx.exit;
    Call ns = DoCall(o, "GET", "/v1/namespaces", "", err);
    if (ns.exit != kExitOk) return ns.exit;
    auto now = std::chrono::steady_clock::now();
    double dt = std::chrono::duration<double>(now - prev_time).count();
    if (o.json) {
      // One JSON document per line (NDJSON) per refresh.
      out << json{{"status", st.body}, {"stats", sx.body}, {"namespaces", ns.body["namespaces"]}}
                 .dump()
          << "\n"
          << std::flush;
    } else {
      if (o.tty) out << "\x1b[H\x1b[2J";
      const json& s = st.body;
      out << "kvcaked " << Str(s["version"]) << " on " << Str(s["node_id"]) << "  up "
          << Duration(s.value("uptime_seconds", 0.0)) << "  policy " << Str(s["policy"])
          << (s.value("draining", false) ? "  DRAINING" : "") << "  refresh #" << (i + 1) << "\n\n";
      out << RenderTable(TierRows(s)) << "\n";
      std::vector<std::vector<std::string>> rows = {
          {"TIER", "HITS", "MISSES", "HIT%", "HITS/S", "MISSES/S"}};
      for (const auto& t : sx.body.value("tiers", json::array())) {
        uint64_t h = U64(t, "hits"), m = U64(t, "misses");
        std::string hr = "-", mr = "-";
        if (prev_stats.is_object()) {
          for (const auto& p : prev_stats.value("tiers", json::array())) {
            if (p["tier"] == t["tier"] && dt > 0) {
              char buf[32];
              std::snprintf(buf, sizeof(buf), "%.1f", (h - std::min(h, U64(p, "hits"))) / dt);
              hr = buf;
              std::snprintf(buf, sizeof(buf), "%.1f", (m - std::min(m, U64(p, "misses"))) / dt);
              mr = buf;
            }
          }
        }
        rows.push_back(
            {Str(t["tier"]), std::to_string(h), std::to_string(m), Percent(h, h + m), hr, mr});
      }
      out << RenderTable(rows) << "\n";
      std::vector<std::vector<std::string>> nrows = {{"NAMESPACE", "BLOCKS", "BYTES"}};
      for (const auto& n : ns.body.value("namespaces", json::array())) {
        nrows.push_back({Str(n["name"]), std::to_string(U64(n, "blocks")),
                         HumanBytes(static_cast<double>(U64(n, "bytes")))});
      }
      out << RenderTable(nrows) << std::flush;
    }
    prev_stats = sx.body;
    prev_time = now;
  }
  return kExitOk;
}

int CmdHealth(const CtlOptions& o, std::ostream& out, std::ostream& err) {
  Call c = DoCall(o, "GET", "/healthz", "", err);
  if (c.exit != kExitOk) return c.exit;
  if (o.json) {
    PrintJson(out, c.body);
  } else {
    out << Str(c.body["status"]) << "\n";
  }
  return kExitOk;
}

bool LooksNumeric(const std::string& s) {
  if (s.empty()) return false;
  return std::isdigit(static_cast<unsigned char>(s[0])) || s == "-";
}

}  // namespace

std::string HumanBytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%.0f B", bytes);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", bytes, kUnits[u]);
  }
  return buf;
}

std::string RenderTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (size_t ri = 0; ri < rows.size(); ++ri) {
    const auto& r = rows[ri];
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      if (i > 0) line += "  ";
      size_t pad = width[i] - r[i].size();
      bool right = ri > 0 && LooksNumeric(r[i]);
      if (right) line += std::string(pad, ' ');
      line += r[i];
      if (!right && i + 1 < r.size()) line += std::string(pad, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string Usage() {
  return R"(kvcakectl: operate a kvcaked node through its admin API.

usage: kvcakectl [--admin=HOST:PORT] [--token_file=FILE] [--json] <command> [args]

commands:
  status                    version, uptime, policy, transports, tier occupancy
  stats                     hits/misses per tier, promotions/demotions per path
  ns                        namespaces with geometry, usage and CAKE layer budgets
  ls [--ns=N] [--hash=H] [--layer=L] [--tier=gpu|host|ssd] [--limit=100]
                            list blocks
  evict --ns=N [--hash=H] [--layer=L] [--tier=T]
                            drop matching blocks (pinned ones are skipped)
  pin --ns=N [--hash=H] [--layer=L] [--tier=T]    operator-pin matching blocks
  unpin --ns=N [--hash=H] [--layer=L] [--tier=T]  remove operator pins
  members                   cluster members (node, address, state, tiers, last heartbeat)
                            and cross-node counters
  lookup --ns=N (--tokens=T1,T2,... | --hashes=H1,H2,...) [--layer=L]
                            which members hold how much of a prompt's prefix
  drain [--nowait]          demote everything to SSD, with a progress bar
  drain status              drain progress
  config get [NAME...]      hot-reloadable knobs
  config set NAME=VALUE...  change knobs (all or nothing)
  top [--interval_ms=1000] [--iterations=N]
                            live view (N refreshes, 0 = until Ctrl-C)
  health                    GET /healthz

defaults: --admin from $KVCAKE_ADMIN, else 127.0.0.1:18516;
          --token_file from $KVCAKE_ADMIN_TOKEN_FILE.
exit codes: 0 ok, 1 usage, 2 daemon unreachable, 3 bad/missing token, 4 API error.
)";
}

int RunCommand(const CtlOptions& o, const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err) {
  if (args.empty()) {
    err << Usage();
    return kExitUsage;
  }
  try {
    const std::string& cmd = args[0];
    auto no_extra = [&]() {
      if (args.size() > 1) {
        err << "kvcakectl " << cmd << ": unexpected argument '" << args[1] << "'\n";
        return false;
      }
      return true;
    };
    if (cmd == "status") return no_extra() ? CmdStatus(o, out, err) : kExitUsage;
    if (cmd == "stats") return no_extra() ? CmdStats(o, out, err) : kExitUsage;
    if (cmd == "ns" || cmd == "namespaces") {
      return no_extra() ? CmdNamespaces(o, out, err) : kExitUsage;
    }
    if (cmd == "ls" || cmd == "blocks") return no_extra() ? CmdList(o, out, err) : kExitUsage;
    if (cmd == "evict" || cmd == "pin" || cmd == "unpin") {
      return no_extra() ? CmdMutate(o, cmd, out, err) : kExitUsage;
    }
    if (cmd == "members") return no_extra() ? CmdMembers(o, out, err) : kExitUsage;
    if (cmd == "lookup") return no_extra() ? CmdLookup(o, out, err) : kExitUsage;
    if (cmd == "drain") return CmdDrain(o, args, out, err);
    if (cmd == "config") return CmdConfig(o, args, out, err);
    if (cmd == "top") return no_extra() ? CmdTop(o, out, err) : kExitUsage;
    if (cmd == "health") return no_extra() ? CmdHealth(o, out, err) : kExitUsage;
    if (cmd == "help") {
      out << Usage();
      return kExitOk;
    }
    err << "kvcakectl: unknown command '" << cmd << "'\n\n" << Usage();
    return kExitUsage;
  } catch (const std::exception& e) {
    // nlohmann_json type errors on an unexpected answer shape end here.
    err << "kvcakectl: unexpected answer from the daemon: " << e.what() << "\n";
    return kExitApiError;
  }
}

}  // namespace kvcake::ctl
