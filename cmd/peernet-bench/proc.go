package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ), 100 on
// every Linux architecture Go supports.
const userHZ = 100

// processCPU is the user and system CPU time process pid has used, all its
// threads included, from /proc (10 ms resolution); 0 if it cannot be read.
func processCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields after its closing one. utime and stime are fields 14
	// and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * time.Second / userHZ
}

// processRSS is process pid's resident set (VmRSS) in bytes; 0 if it
// cannot be read.
func processRSS(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	return procKB("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:")
}

// selfRSS is this process's resident set (VmRSS) in bytes; 0 where there
// is none.
func selfRSS() uint64 { return uint64(procKB("/proc/self/status", "VmRSS:")) }

// selfHWM is this process's peak resident set (VmHWM) in bytes; 0 where
// there is none.
func selfHWM() uint64 { return uint64(procKB("/proc/self/status", "VmHWM:")) }

// procKB reads the line "key <n> kB" of a /proc file in that format
// (/proc/PID/status, /proc/meminfo, smaps_rollup) and returns n×1024; 0
// if the file or the line cannot be read.
func procKB(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return kBField(b, key)
}

// kBField finds the line "key <n> kB" in b and returns n×1024; 0 if there
// is none.
func kBField(b []byte, key string) int64 {
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := strings.Fields(string(rest))
			if len(f) != 2 || f[1] != "kB" {
				return 0
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0
			}
			return n << 10
		}
	}
	return 0
}

// processRuntime is the CPU time process pid's live threads have used, from
// /proc/PID/task/*/schedstat (nanoseconds, unlike /proc/PID/stat's ticks);
// threads that have exited are not counted. 0 if it cannot be read.
func processRuntime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}
