#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "common/metrics_catalog.h"
#include "common/status.h"
#include "daemon/admin/admin_backend.h"

namespace kvcake::admin {

// One HTTP request as the router sees it (the server owns the bytes).
struct HttpRequestView {
  std::string_view method;         // "GET", "POST", ...
  std::string_view target;         // "/v1/blocks?ns=llama&limit=10"
  std::string_view authorization;  // value of the Authorization header, "" if absent
  std::string_view body;
};

// The reply to send back. Plain value type.
struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// HTTP status for a canonical code (INVALID_ARGUMENT 400, UNAUTHENTICATED 401,
// PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS/ABORTED/FAILED_PRECONDITION
// 409, RESOURCE_EXHAUSTED 429, UNIMPLEMENTED 501, UNAVAILABLE 503,
// DEADLINE_EXCEEDED 504, others 500).
int HttpStatusForCode(StatusCode code);
// {"code":"NOT_FOUND","message":"..."} with the matching HTTP status.
HttpReply ErrorReply(const Status& status);

// Compares a presented secret with the expected one in time independent of
// where they differ (and of the presented length's relation to the content).
bool ConstantTimeEquals(std::string_view expected, std::string_view presented);

// AdminRouter maps admin HTTP requests (routes, auth, query strings, JSON) to
// AdminBackend calls and renders the replies (docs/operations.md lists them).
// Independent of the network: AdminServer feeds it parsed requests.
//
// Auth: when `token` is non-empty every /v1/* request must carry
// "Authorization: Bearer <token>" (401 otherwise); /healthz never needs it;
// /metrics needs it only with `metrics_require_token`.
//
// Never throws and never crashes on any input: malformed requests get 400,
// unknown paths 404, wrong methods 405.
//
// Thread-safety: thread-safe if the backend is (the router holds no mutable
// state besides metrics).
class AdminRouter {
 public:
  // `backend` and `registry` must outlive the router. `registry` is exposed at
  // /metrics and receives kvcake_admin_requests_total.
  AdminRouter(AdminBackend* backend, metrics::Registry* registry, std::string token,
              bool metrics_require_token);

  HttpReply Handle(const HttpRequestView& request);

 private:
  HttpReply Route(const HttpRequestView& request, std::string* route_label);
  bool Authorized(std::string_view authorization) const;

  AdminBackend* backend_;
  metrics::Registry* registry_;
  metrics::Catalog catalog_;
  const std::string token_;
  const bool metrics_require_token_;
};

}  // namespace kvcake::admin
