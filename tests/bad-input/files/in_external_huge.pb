€Â×/€Â×/Binputj
locationext_short.binp