// Role evaluation as pure functions: what a user's roles allow. Deny by
// default, deny wins, logins and nodes checked together per role, the
// shortest session TTL, the union of recorded kinds (a role with none:
// command and network, as the guide says), the auditor's permission.
#include <gtest/gtest.h>

#include "cluster/parse.hpp"
#include "cluster/roles.hpp"

namespace vigil::cluster {
namespace {

Role role(std::string name, std::vector<std::string> logins, LabelSelector labels,
          std::vector<Kind> kinds = {}, std::optional<Seconds> ttl = std::nullopt) {
  Role r;
  r.name = std::move(name);
  r.allow.logins = std::move(logins);
  r.allow.node_labels = std::move(labels);
  r.options.enhanced_recording = std::move(kinds);
  r.options.max_session_ttl = ttl;
  return r;
}

const Labels kDev = {{"env", "dev"}, {"region", "eu-west-1"}};
const Labels kProd = {{"env", "prod"}, {"region", "us-east-1"}};
const Labels kNone = {};

Role builtin(std::string_view name) {
  for (Role& r : builtin_roles())
    if (r.name == name) return r;
  ADD_FAILURE() << "no built-in role " << name;
  return {};
}

TEST(ClusterRole, LabelSelectorsMatchExactlyByWildcardAndByAnyListedValue) {
  EXPECT_TRUE(labels_match({{"env", {"dev"}}}, kDev));
  EXPECT_FALSE(labels_match({{"env", {"dev"}}}, kProd));
  EXPECT_TRUE(labels_match({{"env", {"staging", "dev"}}}, kDev));     // any of the values
  EXPECT_TRUE(labels_match({{"region", {"eu-*"}}}, kDev));            // glob
  EXPECT_FALSE(labels_match({{"region", {"eu-*"}}}, kProd));
  EXPECT_TRUE(labels_match({{"env", {"*"}}}, kDev));                  // any value of a label...
  EXPECT_FALSE(labels_match({{"env", {"*"}}}, kNone));                // ...that the node has
  EXPECT_TRUE(labels_match({{"*", {"*"}}}, kNone));                   // every node
  EXPECT_TRUE(labels_match({{"env", {"dev"}}, {"region", {"eu-*"}}}, kDev));  // all keys
  EXPECT_FALSE(labels_match({{"env", {"dev"}}, {"team", {"core"}}}, kDev));   // unknown label: no
  EXPECT_FALSE(labels_match({}, kDev));                               // empty selector: no node
  EXPECT_FALSE(labels_match({{"env", {"de"}}}, kDev));                // no prefix match
  EXPECT_FALSE(labels_match({{"env", {"dev"}}}, {{"env", "dev2"}}));
}

TEST(ClusterRole, GlobsMatchWholeValues) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a*c", "abbbc"));
  EXPECT_TRUE(glob_match("*-1", "eu-west-1"));
  EXPECT_FALSE(glob_match("a*c", "abbbd"));
  EXPECT_FALSE(glob_match("abc", "abcd"));
  EXPECT_TRUE(glob_match("a**b*c", "aXbYc"));
  // Many stars against a long miss finish (no exponential backtracking).
  EXPECT_FALSE(glob_match(std::string(200, '*') + "b", std::string(10000, 'a')));
}

TEST(ClusterRole, NoRoleAllowsNothing) {
  AccessChecker none({}, {});
  EXPECT_TRUE(none.logins().empty());
  EXPECT_EQ(none.check_login(kDev, "alice").error().kind(), Errc::permission_denied);
  EXPECT_FALSE(none.can_see_node(kDev));
  EXPECT_EQ(none.max_session_ttl(), Seconds{0});
  EXPECT_TRUE(none.enhanced_recording().empty());
  EXPECT_FALSE(none.can("session", "read"));
  EXPECT_FALSE(none.can_read_others_sessions());
}

TEST(ClusterRole, LoginsExpandTraitsAndDropWhatIsNotALogin) {
  AccessChecker c({builtin("access"), role("ops", {"ubuntu", "{{external.unix}}"}, {{"*", {"*"}}})},
                  {{"logins", {"alice", "bad login", "-x", "root"}}, {"unix", {"deploy"}}});
  EXPECT_EQ(c.logins(), (std::vector<std::string>{"alice", "deploy", "root", "ubuntu"}));
  // A trait the user does not have expands to nothing.
  AccessChecker no_traits({builtin("access")}, {});
  EXPECT_TRUE(no_traits.logins().empty());
  EXPECT_FALSE(no_traits.check_login(kDev, "alice").ok());
}

TEST(ClusterRole, ALoginNeedsOneRoleThatAllowsBothItAndTheNode) {
  // dev: alice on dev nodes; prod: root on prod nodes. Not root on dev.
  AccessChecker c({role("dev", {"alice"}, {{"env", {"dev"}}}),
                   role("prod", {"root"}, {{"env", {"prod"}}})},
                  {});
  EXPECT_TRUE(c.check_login(kDev, "alice").ok());
  EXPECT_TRUE(c.check_login(kProd, "root").ok());
  auto crossed = c.check_login(kDev, "root");
  ASSERT_FALSE(crossed.ok());
  EXPECT_EQ(crossed.error().kind(), Errc::permission_denied);
  EXPECT_NE(crossed.error().message.find("no role allows this login on a node with these labels"),
            std::string::npos);
  EXPECT_FALSE(c.check_login(kProd, "alice").ok());
  EXPECT_FALSE(c.check_login(kNone, "alice").ok());  // unlabelled node: no selector matches
  EXPECT_FALSE(c.check_login({{"env", "staging"}}, "alice").ok());
  EXPECT_TRUE(c.can_see_node(kDev));
  EXPECT_FALSE(c.can_see_node({{"env", "staging"}}));
}

TEST(ClusterRole, DenyWinsOverEveryAllow) {
  Role deny_root;
  deny_root.name = "no-root";
  deny_root.deny.logins = {"root"};
  Role deny_prod;
  deny_prod.name = "no-prod";
  deny_prod.deny.node_labels = {{"env", {"prod"}}};
  Role all = role("all", {"root", "alice"}, {{"*", {"*"}}});

  AccessChecker c({all, deny_root}, {});
  EXPECT_EQ(c.logins(), std::vector<std::string>{"alice"});
  EXPECT_FALSE(c.check_login(kDev, "root").ok());
  EXPECT_TRUE(c.check_login(kDev, "alice").ok());

  AccessChecker d({all, deny_prod}, {});
  EXPECT_FALSE(d.check_login(kProd, "alice").ok());
  EXPECT_FALSE(d.can_see_node(kProd));
  EXPECT_TRUE(d.check_login(kDev, "alice").ok());

  Role deny_trait;
  deny_trait.name = "no-own";
  deny_trait.deny.logins = {"{{internal.logins}}"};
  AccessChecker e({all, deny_trait}, {{"logins", {"alice"}}});
  EXPECT_FALSE(e.check_login(kDev, "alice").ok());
  EXPECT_TRUE(e.check_login(kDev, "root").ok());
}

TEST(ClusterRole, MaxSessionTtlIsTheMinimumAcrossRoles) {
  using std::chrono::hours;
  EXPECT_EQ(AccessChecker({role("a", {}, {})}, {}).max_session_ttl(), kDefaultMaxSessionTtl);
  EXPECT_EQ(AccessChecker({role("a", {}, {}, {}, hours(8)), role("b", {}, {}, {}, hours(2)),
                           role("c", {}, {})},
                          {})
                .max_session_ttl(),
            hours(2));
  EXPECT_EQ(AccessChecker({role("a", {}, {}, {}, hours(40))}, {}).max_session_ttl(), hours(40));
}

TEST(ClusterRole, RecordedKindsAreTheUnionAndAnEmptyListMeansCommandAndNetwork) {
  auto kinds = [](std::vector<Role> roles) { return AccessChecker(std::move(roles), {}).enhanced_recording(); };
  KindSet command_network;
  command_network.add(Kind::command);
  command_network.add(Kind::network);
  KindSet disk;
  disk.add(Kind::disk);
  EXPECT_EQ(kinds({role("a", {}, {})}), command_network);                  // absent or empty
  EXPECT_EQ(kinds({role("a", {}, {}, {Kind::disk})}), disk);               // disk only
  EXPECT_EQ(kinds({role("a", {}, {}, {Kind::disk}), role("b", {}, {}, {Kind::command})}).bits(),
            (KindSet().bits() | 1u | 2u));                                 // union of two
  EXPECT_EQ(kinds({role("a", {}, {}, {Kind::disk}), role("b", {}, {})}), KindSet::all());
  // The guide's role records all three.
  auto guide = parse_role("version: v8\nkind: role\nmetadata:\n  name: enhanced-recording\nspec:\n"
                          "  options:\n    enhanced_recording:\n    - command\n    - disk\n"
                          "    - network\n",
                          "guide");
  ASSERT_TRUE(guide.ok());
  EXPECT_EQ(kinds({guide.value()}), KindSet::all());
}

TEST(ClusterRole, RulesGrantVerbsOnResourcesAndDenyRulesWin) {
  AccessChecker auditor({builtin("auditor")}, {});
  EXPECT_TRUE(auditor.can_read_others_sessions());
  EXPECT_TRUE(auditor.can("event", "list"));
  EXPECT_FALSE(auditor.can("session", "delete"));
  EXPECT_FALSE(auditor.can("role", "create"));
  EXPECT_TRUE(auditor.logins().empty());  // the auditor logs in nowhere

  AccessChecker access({builtin("access")}, {{"logins", {"alice"}}});
  EXPECT_FALSE(access.can_read_others_sessions());
  EXPECT_FALSE(access.can("role", "create"));
  EXPECT_TRUE(access.check_login(kProd, "alice").ok());

  AccessChecker editor({builtin("editor")}, {});
  for (const char* res : {"user", "role", "token", "node"})
    for (const char* verb : {"list", "read", "create", "update", "delete"})
      EXPECT_TRUE(editor.can(res, verb)) << res << " " << verb;
  EXPECT_FALSE(editor.can_read_others_sessions());

  Role everything;
  everything.name = "root";
  everything.allow.rules = {Rule{{"*"}, {"*"}}};
  Role no_sessions;
  no_sessions.name = "no-sessions";
  no_sessions.deny.rules = {Rule{{"session"}, {"read"}}};
  AccessChecker both({everything, no_sessions}, {});
  EXPECT_TRUE(both.can("role", "delete"));
  EXPECT_FALSE(both.can("session", "read"));
  EXPECT_FALSE(both.can_read_others_sessions());
  EXPECT_TRUE(both.can("session", "list"));
}

TEST(ClusterRole, LoginTemplatesAreStrict) {
  EXPECT_EQ(parse_login_template("{{internal.logins}}"), "logins");
  EXPECT_EQ(parse_login_template("{{ internal.logins }}"), "logins");
  EXPECT_EQ(parse_login_template("{{external.unix_user}}"), "unix_user");
  EXPECT_FALSE(parse_login_template("{{internal.}}"));
  EXPECT_FALSE(parse_login_template("{{user.logins}}"));
  EXPECT_FALSE(parse_login_template("{{internal.a.b}}"));
  EXPECT_FALSE(parse_login_template("x{{internal.logins}}"));
}

TEST(ClusterRole, MissingRolesOfAUserAreAnErrorThatNamesThem) {
  User u;
  u.name = "alice";
  u.roles = {"access", "gone"};
  auto roles = resolve_roles(u, [](const std::string& name) -> Result<Role> {
    if (name == "access") return builtin("access");
    return Error::of(Errc::not_found, "no");
  });
  ASSERT_FALSE(roles.ok());
  EXPECT_NE(roles.error().message.find("role gone, which does not exist"), std::string::npos);
}

}  // namespace
}  // namespace vigil::cluster
