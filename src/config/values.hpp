// The checks behind single config values, as pure functions of their text,
// so each rule can be tested without YAML around it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace vigil::config {

// true/false/yes/no/on/off in any letter case.
std::optional<bool> parse_bool(std::string_view text);

// Decimal digits only (no sign, no spaces), within [min, max].
std::optional<uint32_t> parse_whole_number(std::string_view text, uint32_t min, uint32_t max);

// Starts with "/" and has no empty, "." or ".." parts: "/" or "/a/b", but
// not "/a/", "/a//b" or "/a/../b". Such a path names one directory
// unambiguously and cannot climb out of what it is joined to.
bool is_clean_absolute_path(std::string_view path);

// host:port with a port from 1 to 65535; the host is a name, an IPv4
// address or a bracketed IPv6 address ("[::]:3022").
bool is_host_port(std::string_view addr);

// Optimal string alignment distance: insertions, deletions, substitutions
// and swaps of neighbours each count one, which covers the usual typos.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to word, if one is within max_distance edits; the
// first listed wins a tie.
std::optional<std::string_view> closest(std::string_view word,
                                        const std::vector<std::string_view>& candidates,
                                        size_t max_distance = 2);

}  // namespace vigil::config
