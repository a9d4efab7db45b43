// The API's route table and error mapping: what every handler's refusal
// becomes on the wire, and what a client reads back from it.
#include "api/router.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace vigil::api {
namespace {

Request req(std::string method, std::string path, std::string body = {}) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  return r;
}

nlohmann::json parsed(const Reply& r) { return nlohmann::json::parse(r.body); }

TEST(ApiRouter, CapturesNamedSegmentsAndPrefersLiteralSegments) {
  Router router;
  router.add("GET", "/v1/users/:name", [](const Request& q) -> Result<Reply> {
    return Reply::json({{"user", q.param("name")}});
  });
  router.add("GET", "/v1/users/me", [](const Request&) -> Result<Reply> {
    return Reply::json({{"me", true}});
  });
  EXPECT_EQ(parsed(router.dispatch(req("GET", "/v1/users/alice")))["user"], "alice");
  EXPECT_EQ(parsed(router.dispatch(req("GET", "/v1/users/me")))["me"], true);
}

TEST(ApiRouter, UnknownPathsAre404AndWrongMethods405WithAllow) {
  Router router;
  router.add("GET", "/v1/tokens", [](const Request&) -> Result<Reply> { return Reply::json({}); });
  router.add("POST", "/v1/tokens", [](const Request&) -> Result<Reply> { return Reply::json({}); });
  Reply missing = router.dispatch(req("GET", "/v1/nope"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(parsed(missing)["error"]["code"], "not_found");
  Reply wrong = router.dispatch(req("DELETE", "/v1/tokens"));
  EXPECT_EQ(wrong.status, 405);
  ASSERT_EQ(wrong.headers.size(), 1u);
  EXPECT_EQ(wrong.headers[0].first, "Allow");
  EXPECT_EQ(wrong.headers[0].second, "GET, POST");
}

TEST(ApiRouter, AFallbackTakesWhatNoRouteMatchesWithinItsBodyLimitButNoNonCanonicalPath) {
  Router router;
  router.add("GET", "/v1/webapi/find", [](const Request&) -> Result<Reply> {
    return Reply::json({{"local", true}});
  });
  router.set_fallback([](const Request& q) -> Result<Reply> {
    return Reply::json({{"forwarded", q.method + " " + q.path}});
  }, RouteOptions{16});
  EXPECT_EQ(parsed(router.dispatch(req("GET", "/v1/webapi/find")))["local"], true);
  EXPECT_EQ(parsed(router.dispatch(req("GET", "/v1/users/a b")))["forwarded"], "GET /v1/users/a b");
  // A method the local route does not take goes on too (the auth service answers 405).
  EXPECT_EQ(parsed(router.dispatch(req("POST", "/v1/webapi/find")))["forwarded"],
            "POST /v1/webapi/find");
  EXPECT_EQ(router.dispatch(req("POST", "/v1/x", std::string(17, 'a'))).status, 413);
  // What the table refuses as a path is never handed on.
  EXPECT_EQ(router.dispatch(req("GET", "/v1/../admin")).status, 404);
  EXPECT_EQ(router.dispatch(req("GET", "/v1//users")).status, 404);
}

TEST(ApiRouter, NonCanonicalPathsMatchNothing) {
  Router router;
  router.add("GET", "/v1/users/:name", [](const Request& q) -> Result<Reply> {
    return Reply::json({{"user", q.param("name")}});
  });
  for (const char* path : {"/v1/users/..", "/v1/users/.", "/v1//users/x", "/v1/users/x/",
                           "v1/users/x", ""}) {
    EXPECT_EQ(router.dispatch(req("GET", path)).status, 404) << path;
  }
}

TEST(ApiRouter, EachErrorKindHasItsStatusAndTravelsBackWithItsCode) {
  const std::pair<Errc, int> cases[] = {
      {Errc::invalid_argument, 400},   {Errc::unauthenticated, 401},
      {Errc::permission_denied, 403},  {Errc::not_found, 404},
      {Errc::already_exists, 409},     {Errc::failed_precondition, 412},
      {Errc::resource_exhausted, 429}, {Errc::unavailable, 503},
      {Errc::deadline_exceeded, 504},  {Errc::data_loss, 500},
      {Errc::internal, 500},
  };
  for (auto [code, status] : cases) {
    Router router;
    router.add("POST", "/v1/x", [code = code](const Request&) -> Result<Reply> {
      return Error::of(code, "what to do about it");
    });
    Reply r = router.dispatch(req("POST", "/v1/x"));
    EXPECT_EQ(r.status, status) << errc_name(code);
    Error back = error_from_response(r.status, r.body);
    EXPECT_EQ(back.kind(), code) << errc_name(code);
    EXPECT_EQ(back.message, "what to do about it");
  }
}

TEST(ApiRouter, AnErrnoErrorIsAnsweredByItsClass) {
  Router router;
  router.add("GET", "/v1/x", [](const Request&) -> Result<Reply> {
    return Error::sys("open /var/lib/vigil/x", ENOENT);
  });
  EXPECT_EQ(router.dispatch(req("GET", "/v1/x")).status, 404);
}

TEST(ApiRouter, ABodyOverTheRouteLimitIs413BeforeTheHandlerRuns) {
  Router router;
  bool ran = false;
  router.add("PUT", "/v1/blob", [&](const Request&) -> Result<Reply> {
    ran = true;
    return Reply::no_content();
  }, RouteOptions{.max_body = 10});
  EXPECT_EQ(router.dispatch(req("PUT", "/v1/blob", "0123456789")).status, 204);
  EXPECT_TRUE(ran);
  ran = false;
  Reply big = router.dispatch(req("PUT", "/v1/blob", "0123456789A"));
  EXPECT_EQ(big.status, 413);
  EXPECT_FALSE(ran);
  EXPECT_EQ(error_from_response(big.status, big.body).kind(), Errc::resource_exhausted);
}

TEST(ApiRouter, AThrowingHandlerIs500WithoutItsText) {
  Router router;
  router.add("GET", "/v1/x", [](const Request&) -> Result<Reply> {
    throw std::runtime_error("secret internal detail");
  });
  Reply r = router.dispatch(req("GET", "/v1/x"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("secret internal detail"), std::string::npos);
}

TEST(ApiRouter, ARepliedStringThatIsNotUtf8DoesNotFailTheReply) {
  Router router;
  router.add("GET", "/v1/x", [](const Request&) -> Result<Reply> {
    return Reply::json({{"name", std::string("a\xff" "b")}});
  });
  Reply r = router.dispatch(req("GET", "/v1/x"));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(nlohmann::json::accept(r.body));
}

TEST(ApiRouter, ResponsesThatAreNotOursBecomeBoundedOneLineErrors) {
  std::string html = "<html>\n" + std::string(10000, 'x') + "</html>";
  Error e = error_from_response(502, html);
  EXPECT_EQ(e.kind(), Errc::unavailable);
  EXPECT_EQ(e.message.find('\n'), std::string::npos);
  EXPECT_LT(e.message.size(), 700u);
  Error unknown_code = error_from_response(403, R"({"error":{"code":"bogus","message":"m"}})");
  EXPECT_EQ(unknown_code.kind(), Errc::permission_denied);
}

}  // namespace
}  // namespace vigil::api
