// Typed errors: an API maps Error::kind() to a status, so the class of an
// error must survive whichever way it was made.
#include <gtest/gtest.h>

#include <cerrno>
#include <set>

#include "common/result.hpp"

namespace vigil {
namespace {

TEST(Error, SystemErrorsAreClassedByErrno) {
  EXPECT_EQ(Error::sys("open /x", ENOENT).kind(), Errc::not_found);
  EXPECT_EQ(Error::sys("open /x", EACCES).kind(), Errc::permission_denied);
  EXPECT_EQ(Error::sys("write", ENOSPC).kind(), Errc::resource_exhausted);
  EXPECT_EQ(Error::sys("connect", ECONNREFUSED).kind(), Errc::unavailable);
  EXPECT_EQ(Error::sys("bpf", ENOSYS).kind(), Errc::failed_precondition);
  EXPECT_EQ(Error::sys("odd", EXDEV).kind(), Errc::internal);
}

TEST(Error, AnExplicitCodeWinsOverErrno) {
  Error e{"token expired", EACCES, Errc::unauthenticated};
  EXPECT_EQ(e.kind(), Errc::unauthenticated);
  EXPECT_EQ(Error::of(Errc::already_exists, "role exists").kind(), Errc::already_exists);
}

TEST(Error, AnUnclassedMessageIsInternal) {
  EXPECT_EQ(Error{"something broke"}.kind(), Errc::internal);
}

TEST(Error, EveryCodeHasADistinctName) {
  std::set<std::string_view> names;
  for (int c = 0; c <= static_cast<int>(Errc::internal); ++c) names.insert(errc_name(static_cast<Errc>(c)));
  EXPECT_EQ(names.size(), static_cast<size_t>(Errc::internal) + 1);
}

TEST(Result, CarriesTheCodeOfItsError) {
  Result<int> r = Error::of(Errc::not_found, "no such session");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), Errc::not_found);
  Result<void> v = Error::of(Errc::invalid_argument, "bad flag");
  EXPECT_EQ(v.error().kind(), Errc::invalid_argument);
}

}  // namespace
}  // namespace vigil
