node {
  name = "alpha
}
