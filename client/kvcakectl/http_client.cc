#include "client/kvcakectl/http_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <exception>
#include <optional>

namespace kvcake::ctl {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Status HttpClientOptions::Validate() const {
  if (host.empty()) return InvalidArgumentError("empty admin host");
  if (timeout_ms == 0) return InvalidArgumentError("timeout must be > 0");
  return Status::Ok();
}

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {}

namespace {

// Why reading the answer failed. Something that closes at once or answers in
// another protocol is not an admin API (often kvcaked's data port, --listen):
// say so instead of quoting a parser error.
Status ReadFailure(const beast::error_code& ec, const std::string& where, uint32_t timeout_ms) {
  constexpr const char* kHint =
      ": is this kvcaked's admin API? (kvcaked --admin_listen, default 127.0.0.1:18516; "
      "--listen is its data port, not HTTP)";
  if (ec == beast::error::timeout) {
    return DeadlineExceededError("no answer from " + where + " within " +
                                 std::to_string(timeout_ms) + " ms (--timeout_ms)" + kHint);
  }
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == http::error::partial_message) {
    return UnavailableError(where + " closed the connection without an HTTP answer" + kHint);
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
    return UnavailableError(where + " answered, but not in HTTP (" + ec.message() + ")" + kHint);
  }
  return UnavailableError("reading from " + where + ": " + ec.message());
}

// Runs one exchange with async operations so the tcp_stream deadline applies
// to connect, write and read alike.
Result<HttpResponse> Exchange(const HttpClientOptions& o, std::string_view method,
                              std::string_view target, std::string_view body) {
  asio::io_context ioc;
  std::string where = o.host + ":" + std::to_string(o.port);
  boost::system::error_code ec;
  tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(o.host, std::to_string(o.port), ec);
  if (ec) return UnavailableError("cannot resolve " + o.host + ": " + ec.message());

  beast::tcp_stream stream(ioc);
  http::request<http::string_body> req;
  req.version(11);
  req.method(http::string_to_verb(beast::string_view(method.data(), method.size())));
  if (req.method() == http::verb::unknown) return InvalidArgumentError("bad HTTP method");
  req.target(beast::string_view(target.data(), target.size()));
  req.set(http::field::host, where);
  req.set(http::field::user_agent, "kvcakectl");
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (!o.token.empty()) req.set(http::field::authorization, "Bearer " + o.token);
  if (!body.empty() || req.method() == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.prepare_payload();

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256ull << 20);
  std::optional<Status> failure;
  bool done = false;

  stream.expires_after(std::chrono::milliseconds(o.timeout_ms));
  stream.async_connect(endpoints, [&](beast::error_code ec, const tcp::endpoint&) {
    if (ec) {
      failure = ec == beast::error::timeout
                    ? DeadlineExceededError("timed out connecting to " + where)
                    : UnavailableError("cannot connect to kvcaked admin API at " + where + ": " +
                                       ec.message() + " (is kvcaked running?)");
      return;
    }
    http::async_write(stream, req, [&](beast::error_code ec, size_t) {
      if (ec) {
        failure = ec == beast::error::timeout
                      ? DeadlineExceededError("timed out sending to " + where)
                      : UnavailableError("sending to " + where + ": " + ec.message());
        return;
      }
      http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
        if (ec) {
          failure = ReadFailure(ec, where, o.timeout_ms);
          return;
        }
        done = true;
      });
    });
  });
  ioc.run();
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (failure) return *failure;
  if (!done) return InternalError("HTTP exchange did not complete");
  const auto& res = parser.get();
  HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  auto ct = res.find(http::field::content_type);
  if (ct != res.end()) out.content_type = std::string(ct->value());
  out.body = res.body();
  return out;
}

}  // namespace

Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                         std::string_view body) {
  RETURN_IF_ERROR(options_.Validate());
  try {
    return Exchange(options_, method, target, body);
  } catch (const std::exception& e) {  // Asio/Beast throw on allocation failures etc.
    return InternalError(std::string("HTTP client: ") + e.what());
  }
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace kvcake::ctl
