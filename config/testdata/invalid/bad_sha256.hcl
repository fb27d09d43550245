node {
  name     = "alpha"
  data_dir = "data"
}

plugin "short" {
  command = "../bin/echo"
  sha256  = "9f86d081"
}

plugin "nothex" {
  command = "../bin/echo"
  sha256  = "sha256:1884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
}
