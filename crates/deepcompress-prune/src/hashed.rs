//! HashedNets (Chen et al. 2015, arXiv 1504.04788).
