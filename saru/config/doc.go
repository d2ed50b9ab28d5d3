// Package config turns a director's YAML configuration file into a checked
// Config in one pure step: Parse decodes (rejecting unknown fields), For
// validates and fills defaults, naming the offending field in every error.
//
// It reads no files and opens no sockets; the daemon reads the file,
// applies command-line overrides to the Raw value, and calls For.
package config
