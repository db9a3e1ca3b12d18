/*
 * layercheck: an empty program. CMake links it with every object of one
 * layer's library (--whole-archive) and only the layers that library links,
 * so an object that calls up the stack leaves an undefined reference and the
 * link fails (CMakeLists.txt, "The layering check").
 */
int main(void)
{
  return 0;
}
