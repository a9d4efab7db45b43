// Recordings from the node to the auth service (relay/recording_inbox.hpp,
// relay/uploader.hpp): chunks by offset, idempotent, gaps and different
// bytes refused, one node's sessions only, resumed after restarts of both
// sides, complete in the auth service's store.
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "../support/temp_dir.hpp"
#include "recording/file_store.hpp"
#include "recording/memory_store.hpp"
#include "relay/recording_inbox.hpp"
#include "relay/uploader.hpp"

namespace vigil::relay {
namespace {

std::string bytes_of(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7 + (i >> 8));
  return s;
}

std::string stored(recording::RecordingStore& store, const std::string& sid) {
  auto src = store.open(sid);
  EXPECT_TRUE(src.ok());
  if (!src.ok()) return {};
  std::string out((*src)->info().bytes, '\0');
  size_t got = 0;
  while (got < out.size()) {
    auto n = (*src)->read_at(got, out.data() + got, out.size() - got);
    EXPECT_TRUE(n.ok());
    if (!n.ok() || *n == 0) break;
    got += *n;
  }
  out.resize(got);
  return out;
}

class RecordingInboxTest : public ::testing::Test {
 protected:
  RecordingInboxTest()
      : auth_storage_(std::make_shared<recording::MemoryRecordingStorage>()),
        auth_store_(auth_storage_) {
    reopen();
  }
  void reopen() {
    inbox_.reset();
    auto in = RecordingInbox::open(auth_store_, RecordingInboxOptions{dir_.path() + "/staging"});
    ASSERT_TRUE(in.ok()) << in.error().message;
    inbox_ = std::move(*in);
  }
  Result<RecordingState> put(const std::string& sid, uint64_t offset, std::string_view bytes,
                             bool final = false, const Caller& who = {"node-1", "h1"}) {
    return inbox_->put(who, ChunkMeta{sid, offset, final}, bytes);
  }
  test::TempDir dir_;
  std::shared_ptr<recording::MemoryRecordingStorage> auth_storage_;
  recording::MemoryRecordingStore auth_store_;
  std::unique_ptr<RecordingInbox> inbox_;
  const std::string data_ = bytes_of(10000, 'a');
};

TEST_F(RecordingInboxTest, ChunksByOffsetTheSameTwiceChangesNothing) {
  auto r = put("s1", 0, std::string_view(data_).substr(0, 4000));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->bytes, 4000u);
  EXPECT_FALSE(r->complete);
  // The same chunk again, and one that overlaps with the same bytes.
  r = put("s1", 0, std::string_view(data_).substr(0, 4000));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, 4000u);
  r = put("s1", 3000, std::string_view(data_).substr(3000, 3000));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, 6000u);
  EXPECT_FALSE(auth_store_.info("s1").ok()) << "in the store before it is complete";
  r = put("s1", 6000, std::string_view(data_).substr(6000), true);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->bytes, data_.size());
  EXPECT_TRUE(r->complete);
  auto info = auth_store_.info("s1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, recording::Status::complete);
  EXPECT_EQ(stored(auth_store_, "s1"), data_);
  // The final chunk again (its answer was lost): the same answer.
  r = put("s1", 6000, std::string_view(data_).substr(6000), true);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->complete);
  EXPECT_EQ(stored(auth_store_, "s1"), data_);
}

TEST_F(RecordingInboxTest, RefusesAGapAndSaysWhereToGoOn) {
  ASSERT_TRUE(put("s1", 0, std::string_view(data_).substr(0, 100)).ok());
  auto r = put("s1", 200, std::string_view(data_).substr(200, 100));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::failed_precondition);
  EXPECT_NE(r.error().message.find("send from offset 100"), std::string::npos) << r.error().message;
  r = put("s2", 5, "abc");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::failed_precondition);
  EXPECT_EQ(inbox_->state({"node-1", "h1"}, "s1")->bytes, 100u);
}

// The same offsets with other bytes: a node rewriting history, or two
// uploads of different recordings under one sid.
TEST_F(RecordingInboxTest, RefusesAnOverlapWithDifferentBytes) {
  ASSERT_TRUE(put("s1", 0, std::string_view(data_).substr(0, 100)).ok());
  std::string changed = data_.substr(50, 100);
  changed[10] ^= 1;
  auto r = put("s1", 50, changed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::already_exists);
  EXPECT_EQ(inbox_->state({"node-1", "h1"}, "s1")->bytes, 100u);
  // After completion too.
  ASSERT_TRUE(put("s1", 100, std::string_view(data_).substr(100, 100), true).ok());
  std::string other = data_.substr(0, 200);
  other[150] ^= 1;
  r = put("s1", 0, other, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::already_exists);
  r = put("s1", 200, "more");
  ASSERT_FALSE(r.ok()) << "appending to a complete recording";
  EXPECT_EQ(stored(auth_store_, "s1"), data_.substr(0, 200));
}

TEST_F(RecordingInboxTest, ANodeWritesOnlyItsOwnSessions) {
  ASSERT_TRUE(put("s1", 0, "abc").ok());
  const Caller other{"node-2", "h2"};
  auto r = put("s1", 3, "def", false, other);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::permission_denied);
  auto st = inbox_->state(other, "s1");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind(), Errc::permission_denied);
  // A session the store has from elsewhere cannot be taken over either.
  auto sink = auth_store_.create("theirs", "head");
  ASSERT_TRUE(sink.ok());
  ASSERT_TRUE((*sink)->finish().ok());
  r = put("theirs", 0, "abc");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::already_exists);
  // Names that are not session ids.
  for (std::string bad : {"../x", "", "a/b", "."}) {
    r = put(bad, 0, "abc");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  }
  r = put("big", 0, std::string(kMaxChunkBytes + 1, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
}

// The node uploads while the session runs; the node's uploader and the
// auth service's inbox both restart in the middle; the upload resumes from
// the offset the auth service reports, and the recording ends complete and
// identical.
TEST_F(RecordingInboxTest, UploadResumesAfterBothSidesRestart) {
  auto node_storage = std::make_shared<recording::MemoryRecordingStorage>();
  recording::MemoryRecordingStore node_store(node_storage);
  auto sink = node_store.create("sess", std::string_view(data_).substr(0, 1000));
  ASSERT_TRUE(sink.ok());
  ASSERT_TRUE((*sink)->append(std::string_view(data_).substr(1000, 2000)).ok());

  std::vector<uint64_t> offsets;
  bool lose_answer = false;
  UploadFns fns;
  fns.state = [&](const std::string& sid) { return inbox_->state({"node-1", "h1"}, sid); };
  fns.upload = [&](const std::string& sid, uint64_t offset, std::string_view bytes,
                   bool final) -> Result<RecordingState> {
    offsets.push_back(offset);
    auto r = inbox_->put({"node-1", "h1"}, ChunkMeta{sid, offset, final}, bytes);
    if (r.ok() && lose_answer) {
      lose_answer = false;
      return Error::of(Errc::unavailable, "the answer was lost");
    }
    return r;
  };
  {
    RecordingUploader up(node_store, fns, UploaderOptions{700});
    auto r = up.sync("sess");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->bytes, 3000u);
    EXPECT_FALSE(r->complete) << "final before the session ended";
    EXPECT_FALSE(up.delivered("sess"));
  }
  // Both sides restart; the session goes on.
  reopen();
  ASSERT_TRUE((*sink)->append(std::string_view(data_).substr(3000, 4000)).ok());
  offsets.clear();
  RecordingUploader up(node_store, fns, UploaderOptions{700});
  lose_answer = true;
  auto r = up.sync("sess");
  ASSERT_FALSE(r.ok()) << "the lost answer is an error";
  r = up.sync("sess");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_FALSE(offsets.empty());
  EXPECT_EQ(offsets.front(), 3000u) << "resumed from the offset the auth service reported";
  EXPECT_EQ(r->bytes, 7000u);
  // The session ends.
  ASSERT_TRUE((*sink)->append(std::string_view(data_).substr(7000)).ok());
  ASSERT_TRUE((*sink)->finish().ok());
  ASSERT_TRUE(up.sync_all().ok());
  EXPECT_TRUE(up.delivered("sess"));
  auto info = auth_store_.info("sess");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, recording::Status::complete);
  EXPECT_EQ(stored(auth_store_, "sess"), data_);
  EXPECT_GT(up.stats().chunks, 0u);
  EXPECT_EQ(up.stats().completed, 1u);
}

// A session whose writer died (interrupted) still ends its upload: what
// was recorded reaches the auth service, complete there.
TEST_F(RecordingInboxTest, InterruptedRecordingIsUploadedToItsEnd) {
  auto node_storage = std::make_shared<recording::MemoryRecordingStorage>();
  recording::MemoryRecordingStore node_store(node_storage);
  {
    auto sink = node_store.create("gone", "header-bytes");
    ASSERT_TRUE(sink.ok());
    ASSERT_TRUE((*sink)->append("some frames").ok());
  }  // dropped without finish(): interrupted
  UploadFns fns;
  fns.state = [&](const std::string& sid) { return inbox_->state({"node-1", "h1"}, sid); };
  fns.upload = [&](const std::string& sid, uint64_t offset, std::string_view bytes, bool final) {
    return inbox_->put({"node-1", "h1"}, ChunkMeta{sid, offset, final}, bytes);
  };
  RecordingUploader up(node_store, fns);
  ASSERT_TRUE(up.sync_all().ok());
  EXPECT_TRUE(up.delivered("gone"));
  EXPECT_EQ(stored(auth_store_, "gone"), "header-bytessome frames");
}

}  // namespace
}  // namespace vigil::relay

namespace vigil::relay {
namespace {

// Readers (GET /v1/recordings) see a recording while it arrives: what has
// arrived, status in_progress; once complete it is the store's, not staged.
TEST_F(RecordingInboxTest, ARecordingArrivingIsReadableInProgressThenLeavesTheStaging) {
  auto none = inbox_->in_progress();
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(put("s1", 0, std::string_view(data_).substr(0, 4000)).ok());
  auto listed = inbox_->in_progress();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, std::vector<std::string>{"s1"});
  auto source = inbox_->open_in_progress("s1");
  ASSERT_TRUE(source.ok()) << source.error().message;
  EXPECT_EQ((*source)->info().status, recording::Status::in_progress);
  EXPECT_EQ((*source)->info().bytes, 4000u);
  std::string got(5000, '\0');
  auto n = (*source)->read_at(0, got.data(), got.size());
  ASSERT_TRUE(n.ok());
  got.resize(*n);
  EXPECT_EQ(got, data_.substr(0, 4000));

  ASSERT_TRUE(put("s1", 4000, std::string_view(data_).substr(4000), true).ok());
  listed = inbox_->in_progress();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  auto gone = inbox_->open_in_progress("s1");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().kind(), Errc::not_found) << gone.error().message;
  EXPECT_EQ(inbox_->open_in_progress("never-sent").error().kind(), Errc::not_found);
  EXPECT_EQ(inbox_->open_in_progress("../s1").error().kind(), Errc::invalid_argument);
}

}  // namespace
}  // namespace vigil::relay
