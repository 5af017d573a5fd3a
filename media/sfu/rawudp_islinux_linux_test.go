package sfu

const isLinux = true
