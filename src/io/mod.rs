//! Keras files: reading and writing HDF5 the way Keras lays it out.

pub mod hdf5_text;
