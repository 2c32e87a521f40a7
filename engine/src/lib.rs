//! ringfast engine
