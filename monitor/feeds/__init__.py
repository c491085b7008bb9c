"""Feed formats read into posts: lxml fast paths for RSS, Atom and JSON Feed, and a lenient one."""
