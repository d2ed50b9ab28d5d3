// Package config turns a director's YAML configuration file into a checked
// Config, in two steps that the daemon's start and `saru -check` both run:
//
//   - Parse decodes (rejecting unknown fields) and For validates and fills
//     defaults, one section at a time: pure, reading no files and opening
//     no sockets. It checks syntax, ranges (ports, durations, counts) and
//     the director id's charset (CheckID), and fills a default only where
//     the file leaves a value out, never over a written one.
//   - Config.CheckEnvironment checks what the configuration names outside
//     itself: the credential files (present, readable, well formed, not
//     all zero, and private like ssh's keys) and the interface. The readers
//     it uses (ReadToken, ReadGossipKey, Config.ReadTLS) are the ones the
//     start uses to load the credentials.
//
// Every error names the offending field and its value. The daemon reads
// the file, applies command-line overrides to the Raw value, and calls
// For, then CheckEnvironment.
package config
