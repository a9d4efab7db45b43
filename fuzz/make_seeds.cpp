// Writes the seed corpora of the fuzz targets whose inputs the project's own
// writers make: recordings (RecordingWriter, and composed chunks) and audit
// log day files (events as the audit encoder writes their lines), TLS
// identities (the cluster CA's issuer). The text
// seeds (config, keys, times) are written by hand or by ssh-keygen
// (fuzz/make_seeds.sh, which runs this too).
//   make_fuzz_seeds FUZZ_CORPUS_DIR
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "auditlog/search.hpp"
#include "ca/authority.hpp"
#include "recording/format.hpp"
#include "recording/writer.hpp"

using namespace vigil;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
  std::printf("%s (%zu bytes)\n", path.c_str(), bytes.size());
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A short session as the writer records it: output, a resize, events, and
// small chunks so that several follow each other in one deflate stream.
std::string writer_recording(const fs::path& dir, size_t chunk_bytes) {
  recording::Header h;
  h.sid = "5e2a3c1d-0000-4000-8000-00000000c0de";
  h.server_id = "11111111-2222-4333-8444-555555555555";
  h.user = "alice";
  h.login = "root";
  h.start_ns = 1'795'737'600'000'000'000;
  h.cols = 100;
  h.rows = 30;
  const fs::path path = dir / ("seed-" + std::to_string(chunk_bytes) + ".vrec");
  fs::remove(path);
  recording::WriterOptions options;
  options.chunk_bytes = chunk_bytes;
  options.flush_interval = std::chrono::milliseconds(0);
  options.reorder_window_ns = 0;
  auto writer = recording::RecordingWriter::create(path, h, options);
  if (!writer) {
    std::fprintf(stderr, "%s\n", writer.error().message.c_str());
    std::exit(1);
  }
  int64_t t = h.start_ns;
  (*writer)->output(t += 1'000'000, "$ ls\r\n");
  (*writer)->event(t += 2'000'000,
                   R"({"event":"session.command","path":"/bin/ls","argv":["ls"],"time":"2026-11-27T00:00:00.003Z"})");
  (*writer)->output(t += 3'000'000, "bin  etc  home\r\n\x1b[1;32m$ \x1b[0m");
  (*writer)->resize(t += 4'000'000, 120, 40);
  (*writer)->output(t += 5'000'000, "exit\r\n");
  (*writer)->event(t += 1'000,
                   R"({"event":"session.network","dst_addr":"192.0.2.1","dst_port":443,"time":"2026-11-27T00:00:00.015Z"})");
  if (auto closed = (*writer)->close(); !closed) {
    std::fprintf(stderr, "%s\n", closed.error().message.c_str());
    std::exit(1);
  }
  writer->reset();
  std::string bytes = read(path);
  fs::remove(path);
  fs::remove(path.string() + ".status");  // the file back end's status, beside it
  return bytes;
}

// recording_fuzz's composed form: pieces of (flags, u16 length, payload).
std::string piece(uint8_t flags, const std::string& payload) {
  std::string out(1, static_cast<char>(flags));
  out += static_cast<char>(payload.size() & 0xff);
  out += static_cast<char>(payload.size() >> 8);
  return out + payload;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FUZZ_CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  char tmpl[] = "/tmp/vigil-seeds-XXXXXX";
  const fs::path tmp = mkdtemp(tmpl);

  // recording: mode byte 0 (as is), 1 (checksums fixed), 2 (composed).
  for (size_t chunk : {64, 100000}) {
    const std::string file = writer_recording(tmp, chunk);
    write(out / "recording" / ("writer-chunks-" + std::to_string(chunk)), '\0' + file);
    write(out / "recording" / ("writer-chunks-" + std::to_string(chunk) + "-fixed"), '\1' + file);
  }
  std::string payload;
  recording::encode_record(payload, 0, recording::RecordType::output, 1000, "hello\r\n", 0, 0);
  recording::encode_record(payload, 1000, recording::RecordType::resize, 900, "", 132, 43);
  recording::encode_record(payload, 900, recording::RecordType::event, 5000,
                           R"({"event":"session.disk","path":"/etc/passwd"})", 0, 0);
  std::string second;
  recording::encode_record(second, 0, static_cast<recording::RecordType>(9), 1, "future", 0, 0);
  recording::encode_record(second, 1, recording::RecordType::output, -7, "back in time", 0, 0);
  write(out / "recording" / "composed", '\2' + piece(0, payload) + piece(0, second) +
                                            piece(1, payload) + piece(2, second));

  // ca_tls_identity: choices byte (1: re-signed by the fuzz CA, 2: checked
  // for a server), then a certificate's DER as vigil_ca issues it.
  {
    auto ca = ca::CertAuthority::create(ca::CaType::tls, "fuzz", 1'800'000'000);
    auto key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
    if (!ca || !key) return 1;
    ca::TlsIssueRequest user;
    user.identity.cluster = "fuzz";
    user.identity.name = "alice@example.com";
    user.identity.roles = {"access", "auditor"};
    user.identity.logins = {"root", "ec2-user"};
    user.subject_public_key = key->spki_der();
    user.now = 1'800'000'000;
    user.ttl = 600;
    ca::TlsIssueRequest node = user;
    node.identity.kind = ca::TlsIdentityKind::node;
    node.identity.name = "5e0c4b2a-8d7e-4f0e-9b1a-3c2d1e0f9a8b";
    node.identity.roles = {};
    node.identity.logins = {};
    node.identity.node_name = "node-1";
    node.identity.addresses = {"127.0.0.1", "::1", "node-1.example.com"};
    auto u = ca->issue_tls(user);
    auto n = ca->issue_tls(node);
    if (!u || !n) return 1;
    const fs::path dir = out / "ca_tls_identity";
    write(dir / "user-resigned", '\1' + u->der());
    write(dir / "node-resigned-server", '\3' + n->der());
    write(dir / "user-other-ca", '\0' + u->der());
    write(dir / "ca-certificate", '\0' + ca->active().certificate->der());
    write(dir / "ca-certificate-resigned", '\1' + ca->active().certificate->der());
  }

  // auditlog_search: choices byte, continuation key line (empty), day file.
  const std::string day =
      R"({"ei":0,"event":"session.start","uid":"a","time":"2026-11-27T11:00:00Z","sid":"s1","user":"alice","login":"root"})"
      "\n"
      R"({"ei":1,"event":"session.command","uid":"b","time":"2026-11-27T12:00:00.000001Z","sid":"s1","user":"alice","login":"root","argv":["sh","-c","echo \"hi\""]})"
      "\n"
      R"({"ei":2,"event":"session.command","uid":"c","time":"2026-11-27T12:00:00.000001Z","sid":"s1","user":"alice","login":"root"})"
      "\n"
      R"({"ei":3,"event":"session.disk","uid":"d","time":"2026-11-27T13:30:00+01:00","sid":"s2","user":"bob","login":"bob","path":"/etc/shadow"})"
      "\n"
      R"({"time":"2026-11-27T12:00:00Z","event":"session.network","nested":{"time":"x","user":"alice"},"user":"alice"})"
      "\n"
      "not json\n"
      R"({"event":"session.end","time":"2026-11-27T23:59:59.999999999Z","sid":"s1"})"
      "\n"
      R"({"event":"session.end","time":"2026-11-28T00:01:00Z")";
  write(out / "auditlog_search" / "day-all", std::string(1, '\x07') + "\n" + day);
  write(out / "auditlog_search" / "day-page-1-desc", std::string(1, '\x08') + "\n" + day);
  write(out / "auditlog_search" / "day-filtered", std::string(1, '\xf1') + "\n" + day);
  // A key the search itself made, to replay against the same file.
  fs::create_directories(tmp / "log" / "11111111-2222-4333-8444-555555555555");
  write(tmp / "log" / "11111111-2222-4333-8444-555555555555" / "2026-11-27.00:00:00.log", day);
  auditlog::Query q;
  q.limit = 2;
  auto page = auditlog::search(tmp.string(), q);
  if (!page || page->next.empty()) {
    std::fprintf(stderr, "no continuation key from the seed day file\n");
    return 1;
  }
  write(out / "auditlog_search" / "day-with-key", std::string(1, '\x01') + page->next + "\n" + day);
  fs::remove_all(tmp);
  return 0;
}
