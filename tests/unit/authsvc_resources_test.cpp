// `vigilctl create/get/rm` through the routes: roles and users from YAML,
// force to replace, the formats, built-in roles that cannot be deleted, and
// the audit events of each change.
#include "authsvc_fixture.hpp"

namespace vigil::authsvc::test {
namespace {

class Resources : public AuthFixture {};

constexpr const char* kRole =
    "kind: role\nversion: v8\nmetadata:\n  name: web\nspec:\n  allow:\n    logins: [www]\n";

TEST_F(Resources, ARoleIsCreatedReplacedOnlyWithForceReadBackAndDeletedWithAudit) {
  auto r = call("POST", "/v1/resources", admin_peer(), {{"text", kRole}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["resources"][0], json({{"kind", "role"}, {"name", "web"}, {"replaced", false}}));
  json e = audit_.last("role.created");
  EXPECT_EQ(e["name"], "web");
  EXPECT_EQ(e["code"], "T9000I");
  EXPECT_EQ(e["user"], "@admin");

  auto again = call("POST", "/v1/resources", admin_peer(), {{"text", kRole}});
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_NE(error_message(again).find("vigilctl create -f"), std::string::npos);

  std::string edited = std::string(kRole) + "    node_labels: {env: dev}\n";
  auto forced = call("POST", "/v1/resources", admin_peer(), {{"text", edited}, {"force", true}});
  ASSERT_EQ(forced.status, 200) << forced.body;
  EXPECT_EQ(body(forced)["resources"][0]["replaced"], true);
  EXPECT_EQ(audit_.last("role.updated")["name"], "web");
  EXPECT_EQ(store_->get_role("web")->allow.node_labels.at("env"), std::vector<std::string>{"dev"});

  auto yaml = call("GET", "/v1/resources/role/web", admin_peer());
  ASSERT_EQ(yaml.status, 200) << yaml.body;
  EXPECT_EQ(yaml.content_type, "application/yaml");
  EXPECT_NE(yaml.body.find("name: \"web\""), std::string::npos) << yaml.body;
  auto js = call("GET", "/v1/resources/role/web", admin_peer(), nullptr, {{"format", "json"}});
  ASSERT_EQ(js.status, 200);
  EXPECT_TRUE(json::parse(js.body).is_array());
  auto all = call("GET", "/v1/resources/role", admin_peer(), nullptr, {{"format", "text"}});
  for (const char* name : {"access", "auditor", "editor", "web"})
    EXPECT_NE(all.body.find(name), std::string::npos) << all.body;
  EXPECT_EQ(call("GET", "/v1/resources/role/nope", admin_peer()).status, 404);
  EXPECT_EQ(call("GET", "/v1/resources/secret", admin_peer()).status, 400);

  auto rm = call("DELETE", "/v1/resources/role/web", admin_peer());
  EXPECT_EQ(rm.status, 204) << rm.body;
  EXPECT_EQ(audit_.last("role.deleted")["name"], "web");
  EXPECT_FALSE(store_->get_role("web").ok());
}

TEST_F(Resources, BuiltInRolesCannotBeDeletedButMayBeEdited) {
  for (const char* name : {"access", "editor", "auditor"}) {
    auto r = call("DELETE", std::string("/v1/resources/role/") + name, admin_peer());
    EXPECT_EQ(r.status, 412) << r.body;
    EXPECT_NE(error_message(r).find("is built in"), std::string::npos);
    EXPECT_NE(error_message(r).find("edit it with vigilctl create -f"), std::string::npos);
    EXPECT_TRUE(store_->get_role(name).ok());
  }
  auto edit = call("POST", "/v1/resources", admin_peer(),
                   {{"text", "kind: role\nversion: v8\nmetadata:\n  name: access\nspec:\n  allow:\n"
                             "    logins: ['{{internal.logins}}']\n    node_labels: {env: dev}\n"},
                    {"force", true}});
  EXPECT_EQ(edit.status, 200) << edit.body;
  EXPECT_EQ(store_->get_role("access")->allow.node_labels.count("env"), 1u);
}

TEST_F(Resources, ARoleHeldByAUserOrNamedNodeIsRefused) {
  ASSERT_EQ(call("POST", "/v1/resources", admin_peer(), {{"text", kRole}}).status, 200);
  make_user("una", {"web"});
  auto held = call("DELETE", "/v1/resources/role/web", admin_peer());
  EXPECT_EQ(held.status, 412);
  EXPECT_NE(error_message(held).find("held by user una"), std::string::npos);
  auto node = call("POST", "/v1/resources", admin_peer(),
                   {{"text", "kind: role\nversion: v8\nmetadata:\n  name: node\n"}});
  EXPECT_EQ(node.status, 400);
  EXPECT_NE(error_message(node).find("reserved for nodes"), std::string::npos);
}

TEST_F(Resources, AnEditorMayAndAnAuditorMayNotAndUsersKeepTheirSecrets) {
  make_user("ed", {"editor"});
  make_user("al", {"auditor"});
  auto by_editor = call("POST", "/v1/resources", user_peer("ed"), {{"text", kRole}});
  EXPECT_EQ(by_editor.status, 200) << by_editor.body;
  EXPECT_EQ(audit_.last("role.created")["user"], "ed");
  auto by_auditor = call("DELETE", "/v1/resources/role/web", user_peer("al"));
  EXPECT_EQ(by_auditor.status, 403);
  EXPECT_EQ(audit_.last("access.denied")["action"], "role.delete");

  // A user replaced from YAML keeps the password set at sign-up.
  const std::string hash = store_->get_user("al")->password_hash;
  auto replaced = call("POST", "/v1/resources", admin_peer(),
                       {{"text", "kind: user\nversion: v2\nmetadata:\n  name: al\nspec:\n  roles: "
                                 "[auditor, web]\n"},
                        {"force", true}});
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_EQ(store_->get_user("al")->password_hash, hash);
  EXPECT_EQ(store_->get_user("al")->roles, (std::vector<std::string>{"auditor", "web"}));
  EXPECT_EQ(audit_.last("user.update")["name"], "al");
  auto missing = call("POST", "/v1/resources", admin_peer(),
                      {{"text", "kind: user\nversion: v2\nmetadata:\n  name: zed\nspec:\n  roles: [dba]\n"}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(error_message(missing).find("role dba does not exist"), std::string::npos);
}

TEST_F(Resources, RequestBodiesAreReadStrictly) {
  auto unknown = call("POST", "/v1/users", admin_peer(), {{"name", "x"}, {"roles", {"access"}}, {"admin", true}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(error_message(unknown).find("unknown field 'admin'"), std::string::npos);
  auto type = call("POST", "/v1/users", admin_peer(), {{"name", 5}, {"roles", {"access"}}});
  EXPECT_EQ(type.status, 400);
  EXPECT_NE(error_message(type).find("'name' must be a string"), std::string::npos);
  auto missing = call("POST", "/v1/login", anonymous(), {{"user", "x"}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(error_message(missing).find("'password' is required"), std::string::npos);
  api::Request q;
  q.method = "POST";
  q.path = "/v1/signup";
  q.body = "{not json";
  EXPECT_EQ(router_.dispatch(q).status, 400);
}

}  // namespace
}  // namespace vigil::authsvc::test
