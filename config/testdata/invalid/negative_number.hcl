node {
  name                  = "alpha"
  data_dir              = "data"
  max_handshakes        = -1
  max_inflight_per_peer = 1.5
  max_message_size      = 512
}

plugin "echo" {
  command = "../bin/echo"
  sha256  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

  restart {
    max_crashes = -3
  }

  handle "echo" {
    max_concurrent = 0
  }

  handle "huge" {
    max_concurrent = 1e12
  }
}
