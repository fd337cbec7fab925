#include "daemon/admin/admin_router.h"

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/block_hash.h"
#include "common/logging.h"

namespace kvcake::admin {
namespace {

using json = nlohmann::json;

constexpr uint32_t kMaxListLimit = 10000;

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

HttpReply JsonReply(int status, const json& body) {
  HttpReply r;
  r.status = status;
  // Replace invalid UTF-8 (names come from clients) instead of throwing.
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return r;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding of a query component ('+' is a space). False on a bad escape.
bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      *out += ' ';
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexDigit(in[i + 1]), lo = HexDigit(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      *out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      *out += c;
    }
  }
  return true;
}

Status ParseQuery(std::string_view query, std::map<std::string, std::string>* out) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string key, value;
    if (!PercentDecode(part.substr(0, eq), &key) ||
        (eq != std::string_view::npos && !PercentDecode(part.substr(eq + 1), &value))) {
      return InvalidArgumentError("bad percent-encoding in query string");
    }
    if (out->count(key)) return InvalidArgumentError("query parameter repeated: " + key);
    (*out)[key] = value;
  }
  return Status::Ok();
}

Result<uint64_t> ParseU64(std::string_view text, int base, std::string_view what) {
  if (base == 16 && (text.substr(0, 2) == "0x" || text.substr(0, 2) == "0X")) text.remove_prefix(2);
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return InvalidArgumentError("bad " + std::string(what) + ": '" + std::string(text) + "'");
  }
  return v;
}

Result<Tier> ParseTier(std::string_view text) {
  if (text == "gpu" || text == "device") return Tier::kDevice;
  if (text == "host") return Tier::kHost;
  if (text == "ssd") return Tier::kSsd;
  return InvalidArgumentError("bad tier '" + std::string(text) + "' (gpu|host|ssd)");
}

// The raw filter fields, as strings, from a query string or a JSON body.
struct FilterText {
  std::optional<std::string> ns, hash, layer, tier, limit;
};

// Stores `value` in the field of `f` named `key`; false if there is no such
// field (`limit` counts only `with_limit`).
bool SetFilterField(FilterText* f, std::string_view key, std::string value, bool with_limit) {
  std::optional<std::string>* field = key == "ns"                    ? &f->ns
                                      : key == "hash"                ? &f->hash
                                      : key == "layer"               ? &f->layer
                                      : key == "tier"                ? &f->tier
                                      : key == "limit" && with_limit ? &f->limit
                                                                     : nullptr;
  if (field == nullptr) return false;
  *field = std::move(value);
  return true;
}

Result<FilterText> FilterFromJson(const json& body) {
  FilterText f;
  if (!body.is_object()) return InvalidArgumentError("request body must be a JSON object");
  for (const auto& [key, value] : body.items()) {
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_number_unsigned()) {
      text = key == "hash" ? Hex(value.get<uint64_t>()) : std::to_string(value.get<uint64_t>());
    } else {
      return InvalidArgumentError("field '" + key + "' must be a string or a non-negative integer");
    }
    if (!SetFilterField(&f, key, std::move(text), /*with_limit=*/false)) {
      return InvalidArgumentError("unknown field '" + key + "'");
    }
  }
  return f;
}

std::string TierText(Tier t) { return std::string(TierName(t)); }

json TierStatusJson(const TierStatus& t) {
  json j = {{"tier", TierText(t.tier)},
            {"capacity_bytes", t.capacity_bytes},
            {"used_bytes", t.used_bytes},
            {"blocks", t.blocks}};
  if (!t.ranking.empty()) j["ranking"] = t.ranking;
  return j;
}

json PathJson(const PathStats& p) {
  return {
      {"from", TierText(p.from)}, {"to", TierText(p.to)}, {"blocks", p.blocks}, {"bytes", p.bytes}};
}

json DrainJson(const DrainProgress& d) {
  json j = {{"active", d.active},
            {"done", d.done},
            {"total_blocks", d.total_blocks},
            {"moved_blocks", d.moved_blocks},
            {"total_bytes", d.total_bytes},
            {"moved_bytes", d.moved_bytes}};
  if (!d.error.empty()) j["error"] = d.error;
  return j;
}

json EvictJson(const EvictResult& e) {
  return {{"evicted", e.evicted},
          {"skipped_pinned", e.skipped_pinned},
          {"skipped_busy", e.skipped_busy}};
}

json ConfigJson(const std::vector<ConfigEntry>& entries) {
  json list = json::array();
  for (const auto& e : entries) {
    list.push_back({{"name", e.name}, {"value", e.value}, {"description", e.description}});
  }
  return {{"config", list}};
}

// Parses the body of a POST as a JSON object ("" = {}).
Status ParseBody(std::string_view body, json* out) {
  if (body.empty()) {
    *out = json::object();
    return Status::Ok();
  }
  *out = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) return InvalidArgumentError("request body is not valid JSON");
  if (!out->is_object()) return InvalidArgumentError("request body must be a JSON object");
  return Status::Ok();
}

bool IsHexId(const std::string& text) {
  return text.size() >= 2 && (text.substr(0, 2) == "0x" || text.substr(0, 2) == "0X");
}

// The registered namespace named `text`, or with id `text` ("0x<hex id>").
Result<NamespaceInfo> FindNamespace(AdminBackend* backend, const std::string& text) {
  if (text.empty()) return InvalidArgumentError("empty namespace");
  std::optional<uint64_t> id;
  if (IsHexId(text)) {
    ASSIGN_OR_RETURN(id, ParseU64(text, 16, "namespace id"));
  }
  auto list = backend->ListNamespaces();
  if (!list.ok()) return list.status();
  for (NamespaceInfo& n : *list) {
    if (id ? n.id == *id : n.name == text) return std::move(n);
  }
  return NotFoundError("unknown namespace '" + text + "'");
}

// Resolves a namespace given as "0x<hex id>" (registered or not) or by name.
Result<uint64_t> ResolveNamespace(AdminBackend* backend, const std::string& text) {
  if (IsHexId(text)) return ParseU64(text, 16, "namespace id");
  ASSIGN_OR_RETURN(NamespaceInfo n, FindNamespace(backend, text));
  return n.id;
}

Result<BlockFilter> ToFilter(AdminBackend* backend, const FilterText& t) {
  BlockFilter f;
  if (t.ns) {
    ASSIGN_OR_RETURN(f.ns, ResolveNamespace(backend, *t.ns));
  }
  if (t.hash) {
    ASSIGN_OR_RETURN(f.hash, ParseU64(*t.hash, 16, "block hash"));
  }
  if (t.layer) {
    ASSIGN_OR_RETURN(uint64_t layer, ParseU64(*t.layer, 10, "layer"));
    if (layer > UINT32_MAX) return InvalidArgumentError("layer out of range");
    f.layer = static_cast<uint32_t>(layer);
  }
  if (t.tier) {
    ASSIGN_OR_RETURN(f.tier, ParseTier(*t.tier));
  }
  if (t.limit) {
    ASSIGN_OR_RETURN(uint64_t limit, ParseU64(*t.limit, 10, "limit"));
    if (limit == 0 || limit > kMaxListLimit) {
      return InvalidArgumentError("limit must be 1.." + std::to_string(kMaxListLimit));
    }
    f.limit = static_cast<uint32_t>(limit);
  }
  return f;
}

// The filter fields of GET /v1/blocks' query string.
Result<FilterText> FilterFromQuery(const std::map<std::string, std::string>& params) {
  FilterText t;
  for (const auto& [key, value] : params) {
    if (!SetFilterField(&t, key, value, /*with_limit=*/true)) {
      return InvalidArgumentError("unknown query parameter '" + key + "'");
    }
  }
  return t;
}

// --- endpoints ---------------------------------------------------------------

// What an endpoint's handler gets: the request, its path (without the query
// string and trailing slashes) and its query parameters.
struct RouteCall {
  AdminBackend* backend;
  metrics::Registry* registry;
  std::string_view method;
  std::string_view path;
  const std::map<std::string, std::string>& params;
  std::string_view body;
};

HttpReply HandleHealthz(const RouteCall&) { return JsonReply(200, {{"status", "ok"}}); }

HttpReply HandleMetrics(const RouteCall& call) {
  HttpReply r;
  r.content_type = std::string(metrics::Registry::kContentType);
  r.body = call.registry->Expose();
  return r;
}

HttpReply HandleStatus(const RouteCall& call) {
  auto st = call.backend->GetStatus();
  if (!st.ok()) return ErrorReply(st.status());
  json tiers = json::array();
  for (const auto& t : st->tiers) tiers.push_back(TierStatusJson(t));
  json peers = json::array();
  for (const auto& p : st->peers) peers.push_back({{"peer", p.peer}, {"transport", p.transport}});
  return JsonReply(200, {{"version", st->version},
                         {"node_id", st->node_id},
                         {"uptime_seconds", st->uptime_seconds},
                         {"policy", st->policy},
                         {"transports", st->transports},
                         {"peers", peers},
                         {"draining", st->draining},
                         {"tiers", tiers}});
}

json ClusterMemberJson(const ClusterMemberStatus& m) {
  return {{"node_id", m.node_id},
          {"advertise_address", m.advertise_address},
          {"admin_address", m.admin_address},
          {"version", m.version},
          {"start_time_unix_ms", m.start_time_unix_ms},
          {"last_seen_unix_ms", m.last_seen_unix_ms},
          {"stale", m.stale},
          {"self", m.self},
          {"host_capacity_bytes", m.host_capacity_bytes},
          {"ssd_capacity_bytes", m.ssd_capacity_bytes},
          {"gpu_capacity_bytes", m.gpu_capacity_bytes}};
}

HttpReply HandleCluster(const RouteCall& call) {
  auto c = call.backend->GetCluster();
  if (!c.ok()) return ErrorReply(c.status());
  if (!c->enabled) return JsonReply(200, {{"enabled", false}});
  json members = json::array();
  for (const auto& m : c->members) members.push_back(ClusterMemberJson(m));
  json counters = json::object();
  for (const auto& [name, value] : c->counters) counters[name] = value;
  return JsonReply(200, {{"enabled", true},
                         {"cluster_name", c->cluster_name},
                         {"node_id", c->node_id},
                         {"state", c->state},
                         {"members", members},
                         {"counters", counters}});
}

json TierStatsJson(const TierStats& t) {
  uint64_t lookups = t.hits + t.misses;
  json reasons = json::object();
  for (const auto& [reason, n] : t.drop_reasons) reasons[reason] = n;
  return {{"tier", TierText(t.tier)},
          {"hits", t.hits},
          {"misses", t.misses},
          {"hit_ratio", lookups ? static_cast<double>(t.hits) / lookups : 0.0},
          {"drops", t.drops},
          {"drop_reasons", reasons}};
}

HttpReply HandleStats(const RouteCall& call) {
  auto st = call.backend->GetStats();
  if (!st.ok()) return ErrorReply(st.status());
  json tiers = json::array();
  for (const auto& t : st->tiers) tiers.push_back(TierStatsJson(t));
  json promotions = json::array(), demotions = json::array();
  for (const auto& p : st->promotions) promotions.push_back(PathJson(p));
  for (const auto& p : st->demotions) demotions.push_back(PathJson(p));
  return JsonReply(200, {{"puts", st->puts},
                         {"gets", st->gets},
                         {"errors", st->errors},
                         {"leases_expired", st->leases_expired},
                         {"tiers", tiers},
                         {"promotions", promotions},
                         {"demotions", demotions}});
}

json NamespaceJson(const NamespaceInfo& n) {
  json budgets = json::object();
  for (const auto& b : n.budgets) budgets[TierText(b.tier)] = b.blocks_per_layer;
  return {{"name", n.name},
          {"id", Hex(n.id)},
          {"model", n.model},
          {"dtype", n.dtype},
          {"num_layers", n.num_layers},
          {"block_tokens", n.block_tokens},
          {"layer_block_bytes", n.layer_block_bytes},
          {"serving", n.serving},
          {"blocks", n.blocks},
          {"bytes", n.bytes},
          {"layer_budgets", budgets}};
}

HttpReply HandleNamespaces(const RouteCall& call) {
  auto list = call.backend->ListNamespaces();
  if (!list.ok()) return ErrorReply(list.status());
  json out = json::array();
  for (const auto& n : *list) out.push_back(NamespaceJson(n));
  return JsonReply(200, {{"namespaces", out}});
}

json BlockJson(const BlockInfo& b) {
  return {{"ns", Hex(b.key.ns)},      {"hash", Hex(b.key.hash)},    {"layer", b.key.layer},
          {"tier", TierText(b.tier)}, {"size_bytes", b.size_bytes}, {"state", b.state},
          {"pin_count", b.pin_count}, {"score", b.score},           {"last_access", b.last_access}};
}

HttpReply HandleBlocks(const RouteCall& call) {
  auto text = FilterFromQuery(call.params);
  if (!text.ok()) return ErrorReply(text.status());
  auto filter = ToFilter(call.backend, *text);
  if (!filter.ok()) return ErrorReply(filter.status());
  auto blocks = call.backend->ListBlocks(*filter);
  if (!blocks.ok()) return ErrorReply(blocks.status());
  json out = json::array();
  size_t n = 0;
  for (const auto& b : *blocks) {
    if (n++ >= filter->limit) break;
    out.push_back(BlockJson(b));
  }
  return JsonReply(200, {{"blocks", out}, {"count", out.size()}, {"limit", filter->limit}});
}

// The filter of a POST /v1/evict, /v1/pin or /v1/unpin body ('ns' required).
Result<BlockFilter> BlockActionFilter(const RouteCall& call) {
  json body;
  RETURN_IF_ERROR(ParseBody(call.body, &body));
  ASSIGN_OR_RETURN(FilterText text, FilterFromJson(body));
  if (!text.ns) return InvalidArgumentError("'ns' is required");
  return ToFilter(call.backend, text);
}

// POST /v1/pin, /v1/unpin: `action` on the blocks the body's filter selects;
// replies {`count_key`: n}.
HttpReply HandleBlockAction(const RouteCall& call,
                            Result<uint64_t> (AdminBackend::*action)(const BlockFilter&),
                            const char* count_key) {
  auto filter = BlockActionFilter(call);
  if (!filter.ok()) return ErrorReply(filter.status());
  Result<uint64_t> n = (call.backend->*action)(*filter);
  if (!n.ok()) return ErrorReply(n.status());
  return JsonReply(200, {{count_key, *n}});
}

// POST /v1/evict: {"evicted", "skipped_pinned", "skipped_busy"}.
HttpReply HandleEvict(const RouteCall& call) {
  auto filter = BlockActionFilter(call);
  if (!filter.ok()) return ErrorReply(filter.status());
  Result<EvictResult> e = call.backend->Evict(*filter);
  if (!e.ok()) return ErrorReply(e.status());
  return JsonReply(200, EvictJson(*e));
}
HttpReply HandlePin(const RouteCall& call) {
  return HandleBlockAction(call, &AdminBackend::Pin, "pinned");
}
HttpReply HandleUnpin(const RouteCall& call) {
  return HandleBlockAction(call, &AdminBackend::Unpin, "unpinned");
}

// POST /v1/lookup {"ns": NAME or "0x<id>", "tokens": [..] or "hashes": ["0x..", ..],
// "layer": L}: who holds how much of the chain, for a router. Tokens are
// hashed as the client hashes them (full blocks only, docs/hashing.md).
HttpReply HandleLookup(const RouteCall& call) {
  json body;
  if (Status s = ParseBody(call.body, &body); !s.ok()) return ErrorReply(s);
  if (!body.contains("ns") || !body["ns"].is_string()) {
    return ErrorReply(InvalidArgumentError("'ns' (a namespace name or 0x<id>) is required"));
  }
  Result<NamespaceInfo> ns = FindNamespace(call.backend, body["ns"].get<std::string>());
  if (!ns.ok()) return ErrorReply(ns.status());
  uint32_t layer = 0;
  if (body.contains("layer")) {
    if (!body["layer"].is_number_unsigned() || body["layer"].get<uint64_t>() > UINT32_MAX) {
      return ErrorReply(InvalidArgumentError("'layer' must be a non-negative integer"));
    }
    layer = body["layer"].get<uint32_t>();
  }
  const bool by_tokens = body.contains("tokens");
  if (by_tokens == body.contains("hashes")) {
    return ErrorReply(InvalidArgumentError("give exactly one of 'tokens' and 'hashes'"));
  }
  const json& list = by_tokens ? body["tokens"] : body["hashes"];
  if (!list.is_array()) {
    return ErrorReply(InvalidArgumentError(by_tokens ? "'tokens' must be an array of integers"
                                                     : "'hashes' must be an array of strings"));
  }
  std::vector<uint64_t> chain;
  if (by_tokens) {
    std::vector<uint32_t> tokens;
    tokens.reserve(list.size());
    for (const json& t : list) {
      if (!t.is_number_unsigned() || t.get<uint64_t>() > UINT32_MAX) {
        return ErrorReply(InvalidArgumentError("'tokens' must be integers in [0, 2^32)"));
      }
      tokens.push_back(t.get<uint32_t>());
    }
    chain = HashChain::Compute(tokens, ns->id, ns->block_tokens);
  } else {
    for (const json& h : list) {
      if (!h.is_string()) return ErrorReply(InvalidArgumentError("'hashes' must be strings"));
      Result<uint64_t> v = ParseU64(h.get<std::string>(), 16, "block hash");
      if (!v.ok()) return ErrorReply(v.status());
      chain.push_back(*v);
    }
  }
  Result<PrefixHolders> where = call.backend->LookupHolders(ns->id, layer, chain);
  if (!where.ok()) return ErrorReply(where.status());
  json holders = json::array();
  for (const auto& [node, blocks] : where->holders) {
    holders.push_back({{"node", node}, {"blocks", blocks}});
  }
  return JsonReply(
      200,
      {{"layer", layer}, {"blocks", chain.size()}, {"local", where->local}, {"holders", holders}});
}

// POST starts a drain (202), GET reports its progress.
HttpReply HandleDrain(const RouteCall& call) {
  const bool start = call.method == "POST";
  if (start) {
    if (Status s = call.backend->StartDrain(); !s.ok()) return ErrorReply(s);
  }
  auto d = call.backend->GetDrain();
  if (!d.ok()) return ErrorReply(d.status());
  return JsonReply(start ? 202 : 200, DrainJson(*d));
}

// The settings of a POST body: strings as they are, numbers and bools as JSON.
Status ConfigUpdates(const json& body, std::vector<std::pair<std::string, std::string>>* updates) {
  for (const auto& [key, value] : body.items()) {
    if (value.is_string()) {
      updates->emplace_back(key, value.get<std::string>());
    } else if (value.is_number() || value.is_boolean()) {
      updates->emplace_back(key, value.dump());
    } else {
      return InvalidArgumentError("value of '" + key + "' must be a string, number or bool");
    }
  }
  if (updates->empty()) return InvalidArgumentError("no settings given");
  return Status::Ok();
}

// POST applies settings, then (like GET) lists them all.
HttpReply HandleConfig(const RouteCall& call) {
  if (call.method == "POST") {
    json body;
    if (Status s = ParseBody(call.body, &body); !s.ok()) return ErrorReply(s);
    std::vector<std::pair<std::string, std::string>> updates;
    if (Status s = ConfigUpdates(body, &updates); !s.ok()) return ErrorReply(s);
    if (Status s = call.backend->SetConfig(updates); !s.ok()) return ErrorReply(s);
  }
  auto cfg = call.backend->GetConfig();
  if (!cfg.ok()) return ErrorReply(cfg.status());
  return JsonReply(200, ConfigJson(*cfg));
}

// --- routing table -----------------------------------------------------------

// Methods an endpoint accepts (a bit set).
enum Method : uint8_t { kGet = 1, kHead = 2, kPost = 4 };
constexpr uint8_t kRead = kGet | kHead;

uint8_t MethodBit(std::string_view method) {
  if (method == "GET") return kGet;
  if (method == "HEAD") return kHead;
  if (method == "POST") return kPost;
  return 0;
}

enum class Auth {
  kNone,     // never needs the token
  kToken,    // needs the bearer token when one is configured
  kMetrics,  // needs it only with metrics_require_token
};

struct Endpoint {
  std::string_view path;   // also the route label of kvcake_admin_requests_total
  uint8_t methods;         // Method bits
  std::string_view allow;  // Allow header of a 405
  Auth auth;
  bool query;  // parses the query string (a bad one is 400)
  HttpReply (*handle)(const RouteCall&);
};

constexpr Endpoint kEndpoints[] = {
    {"/healthz", kRead, "GET, HEAD", Auth::kNone, false, HandleHealthz},
    {"/metrics", kRead, "GET, HEAD", Auth::kMetrics, false, HandleMetrics},
    {"/v1/status", kRead, "GET", Auth::kToken, true, HandleStatus},
    {"/v1/stats", kRead, "GET", Auth::kToken, true, HandleStats},
    {"/v1/namespaces", kRead, "GET", Auth::kToken, true, HandleNamespaces},
    {"/v1/blocks", kRead, "GET", Auth::kToken, true, HandleBlocks},
    {"/v1/evict", kPost, "POST", Auth::kToken, true, HandleEvict},
    {"/v1/pin", kPost, "POST", Auth::kToken, true, HandlePin},
    {"/v1/unpin", kPost, "POST", Auth::kToken, true, HandleUnpin},
    {"/v1/drain", kRead | kPost, "GET, POST", Auth::kToken, true, HandleDrain},
    {"/v1/config", kRead | kPost, "GET, POST", Auth::kToken, true, HandleConfig},
    {"/v1/cluster", kRead, "GET", Auth::kToken, true, HandleCluster},
    {"/v1/lookup", kPost, "POST", Auth::kToken, true, HandleLookup},
};

const Endpoint* FindEndpoint(std::string_view path) {
  for (const Endpoint& e : kEndpoints) {
    if (e.path == path) return &e;
  }
  return nullptr;
}

HttpReply MethodNotAllowed(std::string_view method, const Endpoint& e) {
  HttpReply r =
      JsonReply(405, {{"code", "INVALID_ARGUMENT"},
                      {"message", std::string(method) + " not allowed on " + std::string(e.path) +
                                      " (allowed: " + std::string(e.allow) + ")"}});
  r.headers.emplace_back("Allow", std::string(e.allow));
  return r;
}

}  // namespace

int HttpStatusForCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kCancelled:
      return 499;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

HttpReply ErrorReply(const Status& status) {
  return JsonReply(HttpStatusForCode(status.code()),
                   {{"code", std::string(StatusCodeName(status.code()))},
                    {"message", std::string(status.message())}});
}

bool ConstantTimeEquals(std::string_view expected, std::string_view presented) {
  // Walk the expected secret's full length whatever is presented; differing
  // lengths fold into the result instead of returning early.
  volatile unsigned char diff = expected.size() == presented.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff = diff | (static_cast<unsigned char>(expected[i]) ^ p);
  }
  return diff == 0;
}

AdminRouter::AdminRouter(AdminBackend* backend, metrics::Registry* registry, std::string token,
                         bool metrics_require_token)
    : backend_(backend),
      registry_(registry),
      catalog_(*registry),
      token_(std::move(token)),
      metrics_require_token_(metrics_require_token) {}

bool AdminRouter::Authorized(std::string_view authorization) const {
  if (token_.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() < kBearer.size()) return false;
  // Scheme is case-insensitive (RFC 7235).
  for (size_t i = 0; i < kBearer.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    char k = kBearer[i];
    if (k >= 'A' && k <= 'Z') k = static_cast<char>(k - 'A' + 'a');
    if (c != k) return false;
  }
  std::string_view presented = authorization.substr(kBearer.size());
  while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
  while (!presented.empty() && presented.back() == ' ') presented.remove_suffix(1);
  return ConstantTimeEquals(token_, presented);
}

HttpReply AdminRouter::Handle(const HttpRequestView& request) {
  std::string route = "other";
  HttpReply reply;
  try {
    reply = Route(request, &route);
  } catch (const std::exception& e) {
    // Foreign exceptions (nlohmann_json, std) end here, as a 500.
    KVCAKE_LOG(ERROR) << "admin: " << request.method << " " << request.target
                      << " threw: " << e.what();
    reply = ErrorReply(InternalError(std::string("unexpected error: ") + e.what()));
  } catch (...) {
    reply = ErrorReply(InternalError("unexpected error"));
  }
  catalog_.admin_requests.WithLabels({route, std::to_string(reply.status)})->Increment();
  return reply;
}

HttpReply AdminRouter::Route(const HttpRequestView& request, std::string* route_label) {
  std::string_view target = request.target;
  size_t qmark = target.find('?');
  std::string_view path = target.substr(0, qmark);
  std::string_view query = qmark == std::string_view::npos ? "" : target.substr(qmark + 1);
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);

  const Endpoint* endpoint = FindEndpoint(path);
  if (endpoint == nullptr) {
    return ErrorReply(NotFoundError("no such endpoint: " + std::string(path)));
  }
  *route_label = std::string(endpoint->path);

  const bool needs_token = endpoint->auth == Auth::kToken ||
                           (endpoint->auth == Auth::kMetrics && metrics_require_token_);
  if (needs_token && !Authorized(request.authorization)) {
    HttpReply r = ErrorReply(UnauthenticatedError(
        request.authorization.empty() ? "missing bearer token" : "invalid bearer token"));
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"kvcake\"");
    return r;
  }
  std::map<std::string, std::string> params;
  if (endpoint->query) {
    if (Status s = ParseQuery(query, &params); !s.ok()) return ErrorReply(s);
  }
  if ((MethodBit(request.method) & endpoint->methods) == 0) {
    return MethodNotAllowed(request.method, *endpoint);
  }
  return endpoint->handle(
      RouteCall{backend_, registry_, request.method, path, params, request.body});
}

}  // namespace kvcake::admin
