// Found only when libtorch is not set up: .cargo/config.toml puts this folder on CPATH, which the
// compiler searches after libtorch's own include directory (.libtorch/include).
#error "libtorch is missing: run scripts/setup.sh from the repository root (it assembles CPU libtorch 2.13.0 from PyPI and links it as .libtorch)"
