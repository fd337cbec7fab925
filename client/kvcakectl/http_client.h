#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::ctl {

// One HTTP response. Plain value type.
struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// Options of HttpClient.
struct HttpClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 18516;
  std::string token;             // sent as "Authorization: Bearer <token>" when non-empty
  uint32_t timeout_ms = 10'000;  // connect + request + response, per request

  // INVALID_ARGUMENT for an empty host or a zero timeout.
  Status Validate() const;
};

// A small synchronous HTTP/1.1 client (Boost.Beast) for the admin API: one
// connection per request ("Connection: close"), a deadline per request.
// Errors: UNAVAILABLE when the server cannot be reached (refused, reset,
// unresolvable), DEADLINE_EXCEEDED on timeout. HTTP error statuses are not
// errors: they come back in HttpResponse::status.
//
// Thread-compatible: one instance per thread.
class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);

  // `target` is the path plus query ("/v1/blocks?ns=x"); `body` is sent with
  // Content-Type application/json when non-empty (or when method is POST).
  Result<HttpResponse> Request(std::string_view method, std::string_view target,
                               std::string_view body = "");
  Result<HttpResponse> Get(std::string_view target) { return Request("GET", target); }
  Result<HttpResponse> Post(std::string_view target, std::string_view body) {
    return Request("POST", target, body);
  }

  const HttpClientOptions& options() const { return options_; }

 private:
  HttpClientOptions options_;
};

// Percent-encodes a query component (RFC 3986 unreserved kept as is).
std::string UrlEncode(std::string_view text);

}  // namespace kvcake::ctl
