//go:build !linux

package sfu

const isLinux = false
