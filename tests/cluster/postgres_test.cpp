// End-to-end tier for the PostgreSQL back ends (issue 12): `vigil start`
// with teleport.storage naming a PostgreSQL database for the cluster state
// and a list of audit stores (PostgreSQL first, then the day files). The
// server: tests/support/postgres_server.hpp, started by this suite (port
// 31520); the auth service on 31530. The password reaches the service
// user's process through PGPASSWORD, never the config.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "cluster_harness.hpp"
#include "../support/postgres_server.hpp"

namespace {

using namespace cluster_test;
constexpr int kAuth = 31530;

TEST(PostgresCluster, TheAuthServiceKeepsItsStateAndEventsInPostgresql) {
  std::string error;
  auto* pg = vigil::test::PostgresServer::shared(31520, &error);
  ASSERT_NE(pg, nullptr) << error;
  const std::string db = pg->create_database("vigil_e2e");
  std::string password;
  {
    std::ifstream in(pg->passfile());
    std::string line;
    std::getline(in, line);
    password = line.substr(line.rfind(':') + 1);
  }
  ASSERT_FALSE(password.empty());
  setenv("PGPASSWORD", password.c_str(), 1);

  VigilProcess vigil("vigil-pg-e2e");
  std::ostringstream cfg;
  cfg << "version: v3\n"
         "teleport:\n"
         "  nodename: pgauth\n"
         "  data_dir: " << vigil.data_dir() << "\n"
         "  storage:\n"
         "    type: postgresql\n"
         "    conn_string: " << pg->uri(db) << "\n"
         "    audit_events_uri: ['" << pg->uri(db) << "', 'file://" << vigil.data_dir() << "/log']\n"
         "auth_service:\n"
         "  enabled: true\n"
         "  cluster_name: pgcluster\n"
         "  listen_addr: 127.0.0.1:" << kAuth << "\n"
         "proxy_service:\n"
         "  enabled: false\n"
         "ssh_service:\n"
         "  enabled: false\n";
  vigil.write_config(cfg.str());
  vigil.start();
  bool up = false;
  for (int i = 0; i < 300 && !up; ++i) {
    up = vigil.ctl({"status"}).status == 0;
    if (!up) usleep(200'000);
  }
  ASSERT_TRUE(up) << "vigil start did not come up:\n" << vigil.log_text();

  auto add = vigil.ctl({"users", "add", "alice", "--roles=access", "--logins=root"});
  ASSERT_EQ(add.status, 0) << add.err << add.out;
  // The user is a row of the database, and its audit event is in both stores.
  std::string out;
  ASSERT_TRUE(pg->psql(db, "SELECT 'users=' || count(*) FROM cluster_records WHERE kind = 'user'", &out)) << out;
  EXPECT_NE(out.find("users=1"), std::string::npos) << out;
  bool in_pg = false;
  for (int i = 0; i < 50 && !in_pg; ++i) {  // the audit store writes within its flush interval
    ASSERT_TRUE(pg->psql(db, "SELECT 'events=' || count(*) FROM audit_events WHERE event_type = "
                             "convert_to('user.create', 'UTF8')", &out)) << out;
    in_pg = out.find("events=1") != std::string::npos;
    if (!in_pg) usleep(100'000);
  }
  EXPECT_TRUE(in_pg) << out;
  bool in_file = false;
  for (int i = 0; i < 50 && !in_file; ++i) {
    in_file = !vigil.auth_events("user.create").empty();
    if (!in_file) usleep(100'000);
  }
  EXPECT_TRUE(in_file) << "the second audit store (day files) did not get the event";
  // The built-in roles were made in the database at start.
  ASSERT_TRUE(pg->psql(db, "SELECT 'roles=' || count(*) FROM cluster_records WHERE kind = 'role'", &out)) << out;
  EXPECT_NE(out.find("roles=3"), std::string::npos) << out;
  // The password appears in nothing the service wrote.
  EXPECT_EQ(vigil.log_text().find(password), std::string::npos);
  vigil.stop();
}

}  // namespace
