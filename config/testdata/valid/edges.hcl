# Corner cases that are valid: nulls read as absent, an empty allow list
# exposes a handle to nobody, an upper-case digest is normalised, blocks may
# come in any order, an empty discovery block leaves mDNS off.
discovery {}

plugin "closed" {
  command      = "../bin/echo"
  sha256       = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
  args         = []
  env          = {}
  config       = {}
  grace_period = "0s"

  restart {
    max_crashes = 0
  }

  handle "closed" {
    allow   = []
    timeout = null
  }
}

node {
  name           = "edge-1.test_x"
  data_dir       = "."
  listen         = "[::1]:0"
  log_level      = null
  shutdown_grace = "0s"
  reconnect_min  = "1s"
}

peer "delta" {
  id = "  PN1DQOR4HZAEERCGJBFEYTSQKJKFMWC2LRPGAYTEMZUGU3DOOBZHI5V7K2ZLU  "
}
