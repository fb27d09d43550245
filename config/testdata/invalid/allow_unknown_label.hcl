node {
  name     = "alpha"
  data_dir = "data"
}

peer "beta" {
  id = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
}

plugin "echo" {
  command = "../bin/echo"
  sha256  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

  handle "echo" {
    allow = ["beta", "bta", "nobody", "pn1dqor4hzaeercgjbfeytsqkjkfmwc2lrpgaytemzugu3doobzhi5v7k2zlu"]
  }
}
