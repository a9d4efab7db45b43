// Node configuration: the guide's file, defaults, and the exact message of
// each mistake a person can make in the file.
#include "config/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace vigil::config {
namespace {

// The node file of the enhanced session recording guide, verbatim.
constexpr std::string_view kGuideNodeFile = R"(version: v3
teleport:
  nodename: graviton-node
  auth_token: <token>
  auth_server: 127.0.0.1:3025
  proxy_server: 127.0.0.1:3080
  data_dir: /var/lib/teleport
proxy_service:
  enabled: false
auth_service:
  enabled: false
ssh_service:
  enabled: true
  enhanced_recording:
    enabled: true            # default false
    command_buffer_size: 8   # pages, default 8
    disk_buffer_size: 128    # pages, default 128
    network_buffer_size: 8   # pages, default 8
    cgroup_path: /cgroup2    # where the cgroup v2 hierarchy is mounted, default /cgroup2
    root_path: /teleport     # path inside it for this instance's session cgroups
)";

std::string error_of(std::string_view yaml) {
  Result<Config> config = parse(yaml, "node.yaml");
  return config ? "(parsed without error)" : config.error().message;
}

std::string this_host() {
  char name[HOST_NAME_MAX + 1] = {};
  EXPECT_EQ(gethostname(name, sizeof name - 1), 0);
  return name;
}

KindSet kinds(std::initializer_list<Kind> list) {
  KindSet set;
  for (Kind k : list) set.add(k);
  return set;
}

TEST(Config, GuideNodeFileLoadsUnchanged) {
  Result<Config> config = parse(kGuideNodeFile, "node.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->version, "v3");
  EXPECT_EQ(config->nodename, "graviton-node");
  EXPECT_EQ(config->auth_token, "<token>");
  EXPECT_EQ(config->auth_server, "127.0.0.1:3025");
  EXPECT_EQ(config->proxy_server, "127.0.0.1:3080");
  EXPECT_EQ(config->data_dir, "/var/lib/teleport");
  EXPECT_EQ(config->cluster_name, "graviton-node");
  EXPECT_FALSE(config->proxy_enabled);
  EXPECT_FALSE(config->auth_enabled);
  EXPECT_TRUE(config->ssh.enabled);
  EXPECT_EQ(config->ssh.listen_addr, "0.0.0.0:3022");
  const EnhancedRecording& recording = config->ssh.enhanced_recording;
  EXPECT_TRUE(recording.enabled);
  EXPECT_EQ(recording.command_buffer_size, 8u);
  EXPECT_EQ(recording.disk_buffer_size, 128u);
  EXPECT_EQ(recording.network_buffer_size, 8u);
  EXPECT_EQ(recording.cgroup_path, "/cgroup2");
  EXPECT_EQ(recording.root_path, "/teleport");
  EXPECT_EQ(config->source, "node.yaml");
}

TEST(Config, FailedExecsCanBeTurnedOff) {
  EXPECT_TRUE(defaults().ssh.enhanced_recording.failed_execs);
  Result<Config> config = parse(
      "ssh_service:\n  enhanced_recording:\n    failed_execs: false\n", "node.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_FALSE(config->ssh.enhanced_recording.failed_execs);
  EXPECT_EQ(error_of("ssh_service:\n  enhanced_recording:\n    failed_execs: maybe\n"),
            "node.yaml:3: ssh_service.enhanced_recording.failed_execs: expected true or false, "
            "got \"maybe\"");
}

TEST(Config, SealIsOnUnlessTurnedOff) {
  EXPECT_TRUE(defaults().ssh.enhanced_recording.seal);
  Result<Config> config =
      parse("ssh_service:\n  enhanced_recording:\n    seal: false\n", "node.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_FALSE(config->ssh.enhanced_recording.seal);
  EXPECT_EQ(error_of("ssh_service:\n  enhanced_recording:\n    seal: sometimes\n"),
            "node.yaml:3: ssh_service.enhanced_recording.seal: expected true or false, "
            "got \"sometimes\"");
  EXPECT_EQ(error_of("ssh_service:\n  enhanced_recording:\n    seals: true\n"),
            "node.yaml:3: unknown field ssh_service.enhanced_recording.seals; did you mean seal?");
}

TEST(Config, Defaults) {
  Config config = defaults();
  EXPECT_EQ(config.version, "v3");
  EXPECT_EQ(config.nodename, this_host());
  EXPECT_EQ(config.cluster_name, this_host());
  EXPECT_EQ(config.data_dir, "/var/lib/vigil");
  EXPECT_EQ(config.auth_token, "");
  EXPECT_FALSE(config.proxy_enabled);
  EXPECT_FALSE(config.auth_enabled);
  EXPECT_FALSE(config.ssh.enabled);
  EXPECT_EQ(config.ssh.listen_addr, "0.0.0.0:3022");
  EXPECT_TRUE(config.ssh.trusted_user_ca_keys.empty());
  EXPECT_EQ(config.ssh.default_kinds, kinds({Kind::command, Kind::network}));
  EnhancedRecording recording_on;
  recording_on.enabled = true;  // the embedded defaults record; a file follows the guide
  EXPECT_EQ(config.ssh.enhanced_recording, recording_on);
  EXPECT_TRUE(config.ssh.enhanced_recording.enabled);
  EXPECT_EQ(config.ssh.enhanced_recording.command_buffer_size, 1024u);
  EXPECT_EQ(config.ssh.enhanced_recording.disk_buffer_size, 2048u);
  EXPECT_EQ(config.ssh.enhanced_recording.network_buffer_size, 32u);
  EXPECT_EQ(config.ssh.enhanced_recording.cgroup_path, "/cgroup2");
  EXPECT_EQ(config.ssh.enhanced_recording.root_path, "/vigil");
  EXPECT_EQ(config.source, "<embedded defaults>");
}

// A file's defaults are the embedded ones, but for enhanced recording: the
// guide's default (off) when a file is given, on when none is.
Config file_defaults() {
  Config expected = defaults();
  expected.source = "node.yaml";
  expected.ssh.enhanced_recording.enabled = false;
  return expected;
}

TEST(Config, EnhancedRecordingIsOffInAFileThatOmitsItAndOnWithoutAFile) {
  EXPECT_TRUE(defaults().ssh.enhanced_recording.enabled);
  auto omitted = parse("ssh_service:\n  enabled: true\n", "node.yaml");
  ASSERT_TRUE(omitted) << omitted.error().message;
  EXPECT_FALSE(omitted->ssh.enhanced_recording.enabled);
  EXPECT_FALSE(omitted->ssh.enhanced_recording.enabled_given);
  auto off = parse("ssh_service:\n  enhanced_recording:\n    enabled: false\n", "node.yaml");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_FALSE(off->ssh.enhanced_recording.enabled);
  EXPECT_TRUE(off->ssh.enhanced_recording.enabled_given);
  auto on = parse("ssh_service:\n  enhanced_recording:\n    enabled: yes\n", "node.yaml");
  ASSERT_TRUE(on) << on.error().message;
  EXPECT_TRUE(on->ssh.enhanced_recording.enabled);
}

TEST(Config, EmptyFileYieldsDefaults) {
  Config expected = file_defaults();
  for (std::string_view text : {"", "\n", "# nothing set yet\n", "---\n", "---\n---\n"}) {
    Result<Config> config = parse(text, "node.yaml");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config.value(), expected) << "text: " << text;
  }
}

TEST(Config, EmptySectionsKeepDefaults) {
  Result<Config> config = parse("teleport:\nssh_service: {}\nauth_service:\n", "node.yaml");
  ASSERT_TRUE(config) << config.error().message;
  Config expected = file_defaults();
  EXPECT_EQ(config.value(), expected);
}

TEST(Config, VigilSpellingWithEveryField) {
  Result<Config> config = parse(R"(vigil:
  nodename: node-1
  cluster_name: purple
  data_dir: /srv/vigil
ssh_service:
  enabled: yes
  listen_addr: "[::]:2222"
  trusted_user_ca_keys:
    - /etc/vigil/user_ca.pub
    - /etc/vigil/old_user_ca.pub
  default_recording_kinds: [disk, command]
  enhanced_recording:
    enabled: On
    command_buffer_size: 3
    cgroup_path: /
    root_path: /vigil/node-1
)",
                                "node.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->nodename, "node-1");
  EXPECT_EQ(config->cluster_name, "purple");
  EXPECT_EQ(config->data_dir, "/srv/vigil");
  EXPECT_TRUE(config->ssh.enabled);
  EXPECT_EQ(config->ssh.listen_addr, "[::]:2222");
  EXPECT_EQ(config->ssh.trusted_user_ca_keys,
            (std::vector<std::string>{"/etc/vigil/user_ca.pub", "/etc/vigil/old_user_ca.pub"}));
  EXPECT_EQ(config->ssh.default_kinds, kinds({Kind::command, Kind::disk}));
  EXPECT_TRUE(config->ssh.enhanced_recording.enabled);
  EXPECT_EQ(config->ssh.enhanced_recording.command_buffer_size, 3u);
  EXPECT_EQ(config->ssh.enhanced_recording.disk_buffer_size, 2048u);  // Vigil's default
  EXPECT_EQ(config->ssh.enhanced_recording.cgroup_path, "/");
  EXPECT_EQ(config->ssh.enhanced_recording.root_path, "/vigil/node-1");
}

TEST(Config, ClusterNameFollowsNodename) {
  Result<Config> config = parse("vigil:\n  nodename: node-2\n", "node.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->cluster_name, "node-2");
}

TEST(Config, BothSpellingsOfTheNodeSection) {
  EXPECT_EQ(error_of("teleport:\n  nodename: a\nvigil:\n  nodename: b\n"),
            "node.yaml:3: vigil: the node settings are already under teleport: (line 1); use "
            "either teleport: or vigil:, not both");
}

TEST(Config, ClusterNameOnlyUnderVigil) {
  EXPECT_EQ(error_of("teleport:\n  cluster_name: purple\n"),
            "node.yaml:2: teleport.cluster_name: a Vigil setting that Teleport keeps elsewhere; "
            "rename the teleport: section to vigil: to set it here");
}

TEST(Config, Version) {
  EXPECT_TRUE(parse("ssh_service:\n  enabled: true\n", "node.yaml")) << "missing means v3";
  EXPECT_EQ(error_of("version: v2\n"),
            "node.yaml:1: version: unsupported version \"v2\"; Vigil reads v3 node files: write "
            "version: v3");
  EXPECT_EQ(error_of("version: 3\n"),
            "node.yaml:1: version: unsupported version \"3\"; Vigil reads v3 node files: write "
            "version: v3");
}

TEST(Config, MisspelledFieldSuggestsTheKnownOne) {
  EXPECT_EQ(error_of("ssh_service:\n  enabled: true\n  enhanced_recordng:\n    enabled: true\n"),
            "node.yaml:3: unknown field ssh_service.enhanced_recordng; did you mean "
            "enhanced_recording?");
  EXPECT_EQ(error_of("ssh_service:\n  enhanced_recording:\n    enalbed: true\n"),
            "node.yaml:3: unknown field ssh_service.enhanced_recording.enalbed; did you mean "
            "enabled?");
  EXPECT_EQ(error_of("teleprot:\n  nodename: a\n"),
            "node.yaml:1: unknown field teleprot; did you mean teleport?");
}

TEST(Config, UnknownFieldListsTheKnownOnes) {
  EXPECT_EQ(error_of("version: v3\nteleport:\n  log:\n    output: stderr\n"),
            "node.yaml:3: unknown field teleport.log; expected one of: nodename, auth_token, "
            "auth_server, proxy_server, data_dir, cluster_name, ca_pin, storage, diag_addr");
  EXPECT_EQ(error_of("kind: node\n"),
            "node.yaml:1: unknown field kind; expected one of: version, teleport, vigil, "
            "proxy_service, auth_service, ssh_service, audit");
}

TEST(Config, FieldGivenTwice) {
  EXPECT_EQ(error_of("ssh_service:\n  enabled: true\n  listen_addr: 0.0.0.0:3022\n"
                     "  enabled: false\n"),
            "node.yaml:4: ssh_service.enabled: given twice (first on line 2); keep one");
}

TEST(Config, WrongShapes) {
  EXPECT_EQ(error_of("ssh_service: true\n"),
            "node.yaml:1: ssh_service: expected a map of fields, got \"true\"");
  EXPECT_EQ(error_of("ssh_service:\n  - enabled\n"),
            "node.yaml:1: ssh_service: expected a map of fields, got a list");
  EXPECT_EQ(error_of("ssh_service:\n  enabled:\n    really: true\n"),
            "node.yaml:2: ssh_service.enabled: expected true or false, got a map");
  EXPECT_EQ(error_of("teleport:\n  nodename: [a, b]\n"),
            "node.yaml:2: teleport.nodename: expected a node name, got a list");
  EXPECT_EQ(error_of("- version: v3\n"), "node.yaml:1: expected a map of fields, got a list");
  EXPECT_EQ(error_of("hello\n"), "node.yaml:1: expected a map of fields, got \"hello\"");
  EXPECT_EQ(error_of("? [a, b]\n: c\n"), "node.yaml:1: expected a field name, got a list");
}

TEST(Config, EmptyScalarIsAnError) {
  // yaml-cpp marks an empty value at the next line; the error names the key's.
  EXPECT_EQ(error_of("teleport:\n  nodename:\n  data_dir: /x\n"),
            "node.yaml:2: teleport.nodename: expected a node name, got nothing");
  EXPECT_EQ(error_of("teleport:\n  auth_token: \"\"\n"),
            "node.yaml:2: teleport.auth_token: expected a join token, got \"\"");
}

TEST(Config, Booleans) {
  for (std::string_view word : {"true", "True", "TRUE", "yes", "Yes", "on", "ON"}) {
    Result<Config> config = parse("ssh_service:\n  enabled: " + std::string(word), "node.yaml");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_TRUE(config->ssh.enabled) << word;
  }
  for (std::string_view word : {"false", "False", "no", "NO", "off", "Off"}) {
    Result<Config> config =
        parse("proxy_service:\n  enabled: " + std::string(word), "node.yaml");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_FALSE(config->proxy_enabled) << word;
  }
  EXPECT_EQ(error_of("auth_service:\n  enabled: y\n"),
            "node.yaml:2: auth_service.enabled: expected true or false, got \"y\"");
  EXPECT_EQ(error_of("auth_service:\n  enabled: 1\n"),
            "node.yaml:2: auth_service.enabled: expected true or false, got \"1\"");
}

TEST(Config, BufferSizes) {
  auto with_disk_buffer = [](std::string_view value) {
    return "version: v3\nssh_service:\n  enhanced_recording:\n    disk_buffer_size: " +
           std::string(value) + "\n";
  };
  EXPECT_EQ(error_of(with_disk_buffer("lots")),
            "node.yaml:4: ssh_service.enhanced_recording.disk_buffer_size: expected a whole "
            "number of pages from 1 to 65536, got \"lots\"");
  for (std::string_view bad : {"0", "65537", "-1", "8.0", "99999999999999999999"}) {
    EXPECT_EQ(error_of(with_disk_buffer(bad)),
              "node.yaml:4: ssh_service.enhanced_recording.disk_buffer_size: expected a whole "
              "number of pages from 1 to 65536, got \"" + std::string(bad) + "\"");
  }
  Result<Config> config = parse(with_disk_buffer("65536"), "node.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->ssh.enhanced_recording.disk_buffer_size, 65536u);
}

TEST(Config, CgroupPath) {
  auto with_cgroup_path = [](std::string_view value) {
    return "ssh_service:\n  enhanced_recording:\n    cgroup_path: " + std::string(value) + "\n";
  };
  for (std::string_view bad : {"cgroup2", "/cgroup2/", "/sys/fs/../cgroup", "/sys//fs"}) {
    EXPECT_EQ(error_of(with_cgroup_path(bad)),
              "node.yaml:3: ssh_service.enhanced_recording.cgroup_path: expected the absolute "
              "path where cgroup v2 is mounted, like /cgroup2 (no \".\" or \"..\" parts, no "
              "\"//\", no trailing \"/\"), got \"" + std::string(bad) + "\"");
  }
  for (std::string_view good : {"/", "/sys/fs/cgroup"})
    EXPECT_TRUE(parse(with_cgroup_path(good), "node.yaml")) << good;
}

TEST(Config, RootPath) {
  auto with_root_path = [](std::string_view value) {
    return "ssh_service:\n  enhanced_recording:\n    root_path: " + std::string(value) + "\n";
  };
  for (std::string_view bad : {"/", "vigil", "/vigil/../system.slice", "/vigil/"}) {
    EXPECT_EQ(error_of(with_root_path(bad)),
              "node.yaml:3: ssh_service.enhanced_recording.root_path: expected a path below "
              "cgroup_path for this node's session cgroups, like /vigil (starting with \"/\", no "
              "\".\" or \"..\" parts, no \"//\", no trailing \"/\"), got \"" + std::string(bad) +
                  "\"");
  }
}

TEST(Config, DataDir) {
  EXPECT_EQ(error_of("teleport:\n  data_dir: var/lib/vigil\n"),
            "node.yaml:2: teleport.data_dir: expected an absolute path, like /var/lib/vigil, got "
            "\"var/lib/vigil\"");
}

TEST(Config, ListenAddr) {
  auto with_listen_addr = [](std::string_view value) {
    return "ssh_service:\n  listen_addr: \"" + std::string(value) + "\"\n";
  };
  for (std::string_view bad : {"0.0.0.0", "0.0.0.0:0", "0.0.0.0:65536", "::1:3022", ":3022"}) {
    EXPECT_EQ(error_of(with_listen_addr(bad)),
              "node.yaml:2: ssh_service.listen_addr: expected host:port with a port from 1 to "
              "65535, like 0.0.0.0:3022 or [::]:3022, got \"" + std::string(bad) + "\"");
  }
  for (std::string_view good : {"127.0.0.1:1", "[::1]:65535", "node-1.example.com:3022"})
    EXPECT_TRUE(parse(with_listen_addr(good), "node.yaml")) << good;
}

TEST(Config, TrustedUserCaKeys) {
  EXPECT_EQ(error_of("ssh_service:\n  trusted_user_ca_keys: /etc/ca.pub\n"),
            "node.yaml:2: ssh_service.trusted_user_ca_keys: expected a list of file paths, got "
            "\"/etc/ca.pub\"");
  EXPECT_EQ(error_of("ssh_service:\n  trusted_user_ca_keys:\n    - /etc/ca.pub\n    - {}\n"),
            "node.yaml:4: ssh_service.trusted_user_ca_keys[1]: expected a file path, got a map");
}

TEST(Config, DefaultRecordingKinds) {
  EXPECT_EQ(error_of("ssh_service:\n  default_recording_kinds:\n    - command\n    - comand\n"),
            "node.yaml:4: ssh_service.default_recording_kinds[1]: unknown event kind \"comand\"; "
            "did you mean command?");
  EXPECT_EQ(error_of("ssh_service:\n  default_recording_kinds: [files]\n"),
            "node.yaml:2: ssh_service.default_recording_kinds[0]: unknown event kind \"files\"; "
            "use command, disk, network");
  EXPECT_EQ(error_of("ssh_service:\n  default_recording_kinds: [disk, network, disk]\n"),
            "node.yaml:2: ssh_service.default_recording_kinds[2]: \"disk\" is listed twice; list "
            "each kind once");
  EXPECT_EQ(error_of("ssh_service:\n  default_recording_kinds: []\n"),
            "node.yaml:2: ssh_service.default_recording_kinds: the list is empty; list at least "
            "one of command, disk, network, or remove the field to record command,network");
  EXPECT_EQ(error_of("ssh_service:\n  default_recording_kinds: command,disk\n"),
            "node.yaml:2: ssh_service.default_recording_kinds: expected a list of event kinds "
            "(command, disk, network), got \"command,disk\"");
}

TEST(Config, YamlSyntaxErrorGivesLineAndColumn) {
  EXPECT_EQ(error_of("ssh_service:\n  enabled: [true\n"),
            "node.yaml:3:1: YAML syntax error: end of sequence flow not found; check the "
            "indentation, quotes and brackets here");
  EXPECT_EQ(error_of("ssh_service:\n  enabled: true\n listen_addr: 0.0.0.0:3022\n"),
            "node.yaml:3:2: YAML syntax error: end of map not found; check the indentation, "
            "quotes and brackets here");
}

TEST(Config, OneDocumentOnly) {
  for (std::string_view text : {"---\nversion: v3\n", "version: v3\n---\n# done\n", "version: v3\n...\n"})
    EXPECT_TRUE(parse(text, "node.yaml")) << "empty documents around it are fine: " << text;
  EXPECT_EQ(error_of("version: v3\n---\nssh_service:\n  enabled: true\n"),
            "node.yaml:3: a second YAML document starts here; keep the node settings in one "
            "document (remove the extra ---)");
}

TEST(Config, RingBytesRoundsPagesUpToAPowerOfTwo) {
  EXPECT_EQ(ring_bytes(1), 4096u);
  EXPECT_EQ(ring_bytes(3), 16384u);
  EXPECT_EQ(ring_bytes(8), 32768u);
  EXPECT_EQ(ring_bytes(128), 524288u);
  EXPECT_EQ(ring_bytes(129), 1048576u);
  EXPECT_EQ(ring_bytes(kMaxBufferPages), 65536u * 4096u);
}

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil_config_test_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(std::string_view name, std::string_view text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigFile, LoadsTheGuideFile) {
  std::string path = write("node.yaml", kGuideNodeFile);
  Result<Config> config = load_file(path);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->nodename, "graviton-node");
  EXPECT_EQ(config->source, path);
}

TEST_F(ConfigFile, ErrorsNameThePathGiven) {
  std::string path = write("bad.yaml", "ssh_service:\n  enabled: maybe\n");
  Result<Config> config = load_file(path);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().message,
            path + ":2: ssh_service.enabled: expected true or false, got \"maybe\"");
}

TEST_F(ConfigFile, MissingFile) {
  std::string path = (dir_ / "absent.yaml").string();
  Result<Config> config = load_file(path);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().message,
            "cannot open config file " + path + ": No such file or directory");
  EXPECT_EQ(config.error().err, ENOENT);
}

TEST_F(ConfigFile, DirectoryInsteadOfFile) {
  Result<Config> config = load_file(dir_.string());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().message,
            "cannot read config file " + dir_.string() + ": Is a directory");
  EXPECT_EQ(config.error().err, EISDIR);
}

}  // namespace
}  // namespace vigil::config
