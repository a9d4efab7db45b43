// The auth service's calls as HTTP routes (docs/api.md is their reference):
// each handler reads the request's JSON strictly (unknown fields, wrong
// types and oversized values refused with what to send instead), resolves
// the caller from the peer's verified certificate, calls AuthService and
// writes the reply's JSON.
#pragma once

#include "api/router.hpp"
#include "authsvc/service.hpp"

namespace vigil::authsvc {

// Adds every route of the auth service to router; service outlives it.
void add_routes(api::Router& router, AuthService& service);

}  // namespace vigil::authsvc
