#include "cluster/etcd_client.h"

#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <exception>
#include <nlohmann/json.hpp>

namespace kvcake::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// An int64 field of a gateway answer: a JSON string ("123"), or a number from
// a gateway that writes them as such; 0 when absent (proto3 omits zeros).
Result<int64_t> Int64Field(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return int64_t{0};
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& text = it->get_ref<const std::string&>();
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && ptr == text.data() + text.size()) return value;
  }
  return InternalError(std::string("etcd answer has a malformed '") + name + "' field");
}

// A bytes field (base64), "" when absent.
Result<std::string> BytesField(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return InternalError(std::string("etcd answer has a malformed '") + name + "' field");
  }
  return Base64Decode(it->get_ref<const std::string&>());
}

Result<KeyValue> ParseKeyValue(const json& object) {
  KeyValue kv;
  ASSIGN_OR_RETURN(kv.key, BytesField(object, "key"));
  ASSIGN_OR_RETURN(kv.value, BytesField(object, "value"));
  ASSIGN_OR_RETURN(kv.create_revision, Int64Field(object, "create_revision"));
  ASSIGN_OR_RETURN(kv.mod_revision, Int64Field(object, "mod_revision"));
  ASSIGN_OR_RETURN(kv.version, Int64Field(object, "version"));
  ASSIGN_OR_RETURN(kv.lease, Int64Field(object, "lease"));
  return kv;
}

// The kvs of a RangeResponse (also the response_range of a txn).
Result<RangeResult> ParseRange(const json& object) {
  RangeResult result;
  auto header = object.find("header");
  if (header != object.end() && header->is_object()) {
    ASSIGN_OR_RETURN(result.revision, Int64Field(*header, "revision"));
  }
  auto kvs = object.find("kvs");
  if (kvs != object.end() && kvs->is_array()) {
    for (const json& item : *kvs) {
      ASSIGN_OR_RETURN(KeyValue kv, ParseKeyValue(item));
      result.kvs.push_back(std::move(kv));
    }
  }
  return result;
}

// Parses the first JSON document of `body` (a streaming gateway answer is a
// sequence of documents separated by newlines; unary answers have one).
Result<json> ParseBody(std::string_view body) {
  size_t newline = body.find('\n');
  if (newline != std::string_view::npos) body = body.substr(0, newline);
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InternalError("etcd answer is not a JSON object: '" + std::string(body.substr(0, 200)) +
                         "'");
  }
  return doc;
}

// The Status of a gateway error document: {"error": "...", "message":
// "...", "code": N} for unary calls, {"error": {"grpc_code": N, "message":
// "..."}} inside a stream. etcd's gRPC codes are the StatusCode values.
Status GatewayError(const json& doc, unsigned http_status, std::string_view what) {
  int code = 0;
  std::string message;
  const json* source = &doc;
  auto error = doc.find("error");
  if (error != doc.end() && error->is_object()) source = &*error;
  for (const char* name : {"code", "grpc_code"}) {
    auto it = source->find(name);
    if (it != source->end() && it->is_number_integer()) code = it->get<int>();
  }
  auto msg = source->find("message");
  if (msg != source->end() && msg->is_string()) message = msg->get<std::string>();
  if (message.empty() && error != doc.end() && error->is_string())
    message = error->get<std::string>();
  if (code <= 0 || code > static_cast<int>(StatusCode::kUnauthenticated)) {
    code = static_cast<int>(StatusCode::kUnknown);
  }
  if (message.empty()) message = "HTTP status " + std::to_string(http_status);
  return Status(static_cast<StatusCode>(code), std::string(what) + ": " + message);
}

Result<GatewayEtcdClient::Endpoint> ParseEndpoint(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  std::string_view rest(url);
  if (rest.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgumentError("etcd endpoint must be http://HOST:PORT: '" + url + "'");
  }
  rest.remove_prefix(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  GatewayEtcdClient::Endpoint endpoint{url, "", ""};
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == rest.size()) {
    return InvalidArgumentError("etcd endpoint needs a port: '" + url + "'");
  }
  std::string_view host = rest.substr(0, colon);
  std::string_view port = rest.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos || host.find('/') != std::string_view::npos) {
    return InvalidArgumentError("bad etcd endpoint: '" + url + "'");
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return InvalidArgumentError("bad etcd endpoint: '" + url + "'");
  }
  endpoint.host = std::string(host);
  endpoint.port = std::string(port);
  return endpoint;
}

// Outcome of one HTTP exchange with one endpoint.
struct Exchange {
  Status transport;  // not OK: no answer (connect/IO failure or deadline)
  unsigned http_status = 0;
  std::string body;
};

// POSTs `body` to http://endpoint/path before `deadline`. Runs its own
// io_context on the calling thread; the stream's expiry bounds every step.
Exchange Post(const GatewayEtcdClient::Endpoint& endpoint, std::string_view path,
              const std::string& body, std::chrono::steady_clock::time_point deadline,
              uint64_t max_response_bytes) {
  Exchange out;
  asio::io_context ioc;
  beast::error_code ec;
  auto fail = [&](std::string_view step) {
    if (ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      out.transport = UnavailableError(std::string(step) + " " + endpoint.url + ": timed out");
    } else {
      out.transport =
          UnavailableError(std::string(step) + " " + endpoint.url + ": " + ec.message());
    }
    return out;
  };
  // Runs the io_context until the pending operation completes.
  auto run = [&ioc] {
    ioc.run();
    ioc.restart();
  };

  tcp::resolver resolver(ioc);
  tcp::resolver::results_type addresses;
  resolver.async_resolve(endpoint.host, endpoint.port,
                         [&](const beast::error_code& e, tcp::resolver::results_type r) {
                           ec = e;
                           addresses = std::move(r);
                         });
  run();
  if (ec) return fail("resolve");

  beast::tcp_stream stream(ioc);
  stream.expires_at(deadline);
  stream.async_connect(addresses,
                       [&](const beast::error_code& e, const tcp::endpoint&) { ec = e; });
  run();
  if (ec) return fail("connect to");

  http::request<http::string_body> request(http::verb::post, std::string(path), 11);
  request.set(http::field::host, endpoint.host + ":" + endpoint.port);
  request.set(http::field::content_type, "application/json");
  request.keep_alive(false);
  request.body() = body;
  request.prepare_payload();
  stream.expires_at(deadline);
  http::async_write(stream, request, [&](const beast::error_code& e, size_t) { ec = e; });
  run();
  if (ec) return fail("send to");

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_response_bytes);
  stream.expires_at(deadline);
  http::async_read(stream, buffer, parser, [&](const beast::error_code& e, size_t) { ec = e; });
  run();
  if (ec) return fail("read from");

  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  out.http_status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  return out;
}

std::string KeyJson(std::string_view key) { return Base64Encode(key); }

}  // namespace

std::string PrefixRangeEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                 (static_cast<uint8_t>(bytes[i + 1]) << 8) | static_cast<uint8_t>(bytes[i + 2]);
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  static const std::array<int8_t, 256> kDecode = [] {
    std::array<int8_t, 256> table;
    table.fill(-1);
    for (int i = 0; i < 64; ++i) table[static_cast<uint8_t>(kBase64Alphabet[i])] = int8_t(i);
    return table;
  }();
  if (text.size() % 4 != 0)
    return InvalidArgumentError("base64 text length is not a multiple of 4");
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t v = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size() - padding; ++i) {
    int8_t d = kDecode[static_cast<uint8_t>(text[i])];
    if (d < 0) return InvalidArgumentError("invalid base64 character");
    v = (v << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((v >> bits) & 0xff));
    }
  }
  return out;
}

Result<std::unique_ptr<GatewayEtcdClient>> GatewayEtcdClient::Create(
    GatewayEtcdClientOptions options) {
  if (options.endpoints.empty()) return InvalidArgumentError("no etcd endpoints");
  if (options.request_timeout_ms == 0) return InvalidArgumentError("etcd request timeout is 0");
  if (options.max_response_bytes == 0) return InvalidArgumentError("max_response_bytes is 0");
  std::vector<Endpoint> endpoints;
  for (const std::string& url : options.endpoints) {
    ASSIGN_OR_RETURN(Endpoint endpoint, ParseEndpoint(url));
    endpoints.push_back(std::move(endpoint));
  }
  return std::unique_ptr<GatewayEtcdClient>(
      new GatewayEtcdClient(std::move(options), std::move(endpoints)));
}

GatewayEtcdClient::GatewayEtcdClient(GatewayEtcdClientOptions options,
                                     std::vector<Endpoint> endpoints)
    : options_(std::move(options)), endpoints_(std::move(endpoints)) {}

Result<std::string> GatewayEtcdClient::Call(std::string_view path, const std::string& body) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
  size_t first = preferred_.load(std::memory_order_relaxed) % endpoints_.size();
  std::string failures;
  for (size_t n = 0; n < endpoints_.size(); ++n) {
    size_t index = (first + n) % endpoints_.size();
    const Endpoint& endpoint = endpoints_[index];
    if (n > 0 && std::chrono::steady_clock::now() >= deadline) break;
    Exchange exchange;
    try {
      exchange = Post(endpoint, path, body, deadline, options_.max_response_bytes);
    } catch (const std::exception& e) {
      exchange.transport = UnavailableError(endpoint.url + ": " + e.what());
    }
    if (!exchange.transport.ok()) {
      if (!failures.empty()) failures += "; ";
      failures += exchange.transport.message();
      continue;
    }
    std::string what = "etcd " + endpoint.url + std::string(path);
    if (exchange.http_status == 200) {
      preferred_.store(index, std::memory_order_relaxed);
      return std::move(exchange.body);
    }
    Result<json> doc = ParseBody(exchange.body);
    Status error =
        doc.ok() ? GatewayError(*doc, exchange.http_status, what)
                 : UnknownError(what + ": HTTP status " + std::to_string(exchange.http_status));
    if (error.code() != StatusCode::kUnavailable) return error;
    if (!failures.empty()) failures += "; ";
    failures += error.message();
  }
  return UnavailableError("etcd unreachable within " + std::to_string(options_.request_timeout_ms) +
                          " ms (" + failures + ")");
}

Status GatewayEtcdClient::Put(std::string_view key, std::string_view value, int64_t lease_id) {
  json request = {{"key", KeyJson(key)}, {"value", Base64Encode(value)}};
  if (lease_id != 0) request["lease"] = std::to_string(lease_id);
  ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/put", request.dump()));
  return ParseBody(body).status();
}

Result<bool> GatewayEtcdClient::PutIfAbsent(std::string_view key, std::string_view value,
                                            int64_t lease_id, KeyValue* existing) {
  json put = {{"key", KeyJson(key)}, {"value", Base64Encode(value)}};
  if (lease_id != 0) put["lease"] = std::to_string(lease_id);
  json request = {
      {"compare", json::array({{{"key", KeyJson(key)},
                                {"result", "EQUAL"},
                                {"target", "CREATE"},
                                {"create_revision", "0"}}})},
      {"success", json::array({{{"request_put", put}}})},
      {"failure", json::array({{{"request_range", {{"key", KeyJson(key)}}}}})},
  };
  ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/txn", request.dump()));
  ASSIGN_OR_RETURN(json doc, ParseBody(body));
  auto succeeded = doc.find("succeeded");
  if (succeeded != doc.end() && succeeded->is_boolean() && succeeded->get<bool>()) return true;
  if (existing != nullptr) {
    *existing = KeyValue();
    auto responses = doc.find("responses");
    if (responses != doc.end() && responses->is_array() && !responses->empty()) {
      auto range = (*responses)[0].find("response_range");
      if (range != (*responses)[0].end() && range->is_object()) {
        ASSIGN_OR_RETURN(RangeResult result, ParseRange(*range));
        if (!result.kvs.empty()) *existing = std::move(result.kvs[0]);
      }
    }
  }
  return false;
}

Result<RangeResult> GatewayEtcdClient::Range(std::string_view key) {
  json request = {{"key", KeyJson(key)}};
  ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/range", request.dump()));
  ASSIGN_OR_RETURN(json doc, ParseBody(body));
  return ParseRange(doc);
}

Result<RangeResult> GatewayEtcdClient::RangePrefix(std::string_view prefix) {
  if (prefix.empty()) return InvalidArgumentError("RangePrefix needs a non-empty prefix");
  json request = {{"key", KeyJson(prefix)}, {"range_end", KeyJson(PrefixRangeEnd(prefix))}};
  ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/range", request.dump()));
  ASSIGN_OR_RETURN(json doc, ParseBody(body));
  return ParseRange(doc);
}

Result<int64_t> GatewayEtcdClient::Delete(std::string_view key) {
  json request = {{"key", KeyJson(key)}};
  ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/deleterange", request.dump()));
  ASSIGN_OR_RETURN(json doc, ParseBody(body));
  return Int64Field(doc, "deleted");
}

Result<int64_t> GatewayEtcdClient::LeaseGrant(int64_t ttl_s) {
  if (ttl_s <= 0) return InvalidArgumentError("lease TTL must be > 0");
  json request = {{"TTL", std::to_string(ttl_s)}, {"ID", "0"}};
  ASSIGN_OR_RETURN(std::string body, Call("/v3/lease/grant", request.dump()));
  ASSIGN_OR_RETURN(json doc, ParseBody(body));
  auto error = doc.find("error");
  if (error != doc.end() && error->is_string() && !error->get_ref<const std::string&>().empty()) {
    return UnavailableError("etcd lease grant: " + error->get<std::string>());
  }
  ASSIGN_OR_RETURN(int64_t id, Int64Field(doc, "ID"));
  if (id == 0) return InternalError("etcd lease grant answered without a lease id");
  return id;
}

Result<int64_t> GatewayEtcdClient::LeaseKeepAliveOnce(int64_t lease_id) {
  json request = {{"ID", std::to_string(lease_id)}};
  ASSIGN_OR_RETURN(std::string body, Call("/v3/lease/keepalive", request.dump()));
  ASSIGN_OR_RETURN(json doc, ParseBody(body));
  auto result = doc.find("result");
  if (result == doc.end() || !result->is_object()) {
    return GatewayError(doc, 200, "etcd lease keepalive " + std::to_string(lease_id));
  }
  ASSIGN_OR_RETURN(int64_t ttl, Int64Field(*result, "TTL"));
  if (ttl <= 0) return NotFoundError("etcd lease " + std::to_string(lease_id) + " not found");
  return ttl;
}

Status GatewayEtcdClient::LeaseRevoke(int64_t lease_id) {
  json request = {{"ID", std::to_string(lease_id)}};
  ASSIGN_OR_RETURN(std::string body, Call("/v3/lease/revoke", request.dump()));
  return ParseBody(body).status();
}

}  // namespace kvcake::cluster
